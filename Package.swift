// swift-tools-version:6.0
import PackageDescription

// Module graph (dependencies point down): hubctl → Registry → Builds, Laws; Builds → Compressor, Evaluator, Training →
// Transformer → Checkpoint → HubCore; C shims wrap the system libraries through pkg-config.
let package = Package(
    name: "CompressionHub",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "hubctl", targets: ["hubctl"]),
        .library(name: "Registry", targets: ["Registry"]),
        .library(name: "Compressor", targets: ["Compressor"]),
        .library(name: "Evaluator", targets: ["Evaluator"]),
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev"])]),

        .target(name: "HubCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Checkpoint", dependencies: ["HubCore"]),
        // The numerical modules are compiled optimized even in debug builds: unoptimized SIMD
        // code and weight surgery loops are one to two orders of magnitude slower, which would
        // make the tests crawl.
        // The quantized-block GEMV loops: int8 dot products in C, compiled for AVX2 (see block_kernels.c).
        .target(name: "BlockKernels", cSettings: [.unsafeFlags(["-O3", "-mavx2", "-mfma", "-mf16c"])]),
        // Names OpenBLAS's kernels where its own detection falls back to old ones (see blas_kernels.c).
        .target(name: "CBLASKernels", linkerSettings: [.linkedLibrary("openblas")]),
        // Both also compile for the AVX2 + FMA machines BlockKernels already requires, so that
        // their eight-lane loops (softmax, SwiGLU, the loss's exponentials, AdamW) are single
        // 256-bit instructions rather than pairs of SSE ones; Swift does not fuse a·b + c, so
        // the results are the same bits.
        .target(name: "Transformer", dependencies: ["Checkpoint", "BlockKernels", "CBLASKernels", "COpenBLAS"],
                swiftSettings: [.unsafeFlags(["-O", "-target-cpu", "haswell"])]),
        .target(name: "Evaluator", dependencies: ["Transformer", "Checkpoint", "HubCore", "COpenBLAS", "CArchive"]),
        // The backward pass and its optimiser: compiled optimized for the same reason.
        .target(name: "Training", dependencies: ["Transformer", "Checkpoint", "HubCore", "COpenBLAS"],
                swiftSettings: [.unsafeFlags(["-O", "-target-cpu", "haswell"])]),
        .target(name: "Compressor", dependencies: ["Transformer", "Checkpoint", "HubCore", "COpenBLAS"],
                swiftSettings: [.unsafeFlags(["-O"])]),
        // The build engine: recipes, stages as files-in/files-out functions, a stage cache by
        // input hashes, and a runner; it knows nothing of HTTP or SQL.
        .target(name: "Builds", dependencies: ["Compressor", "Evaluator", "Training", "Transformer", "Checkpoint", "HubCore"]),
        // Compression laws: least squares, the paper's law and the simple forms, leave-one-out
        // errors and bootstrap intervals; plain math on points, nothing of models or HTTP.
        .target(name: "Laws", dependencies: []),
        .target(name: "Registry", dependencies: [
            "Builds", "Laws", "Compressor", "Evaluator", "Checkpoint", "HubCore", "CSQLite", "CCurl", "CArchive",
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        .executableTarget(name: "hubctl", dependencies: [
            "Registry", "Builds", "Laws", "Compressor", "Evaluator", "Training", "Transformer", "Checkpoint", "HubCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "HubBenchmarks", dependencies: ["Registry", "Compressor", "Evaluator", "Training", "Transformer", "Checkpoint", "HubCore", "COpenBLAS"],
                          path: "Sources/HubBenchmarks"),

        // Shared by the test targets: locating the installed assets and fixtures, temporary
        // directories, a writer of small synthetic GGUF files, and small random checkpoints.
        .target(name: "HubTestSupport", dependencies: ["HubCore", "Checkpoint", "Transformer"], path: "Tests/HubTestSupport"),
        .testTarget(name: "HubCoreTests", dependencies: ["HubCore", "HubTestSupport"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "HubCore", "HubTestSupport"]),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer", "Checkpoint", "HubTestSupport", "COpenBLAS"]),
        .testTarget(name: "EvaluatorTests", dependencies: ["Evaluator", "Transformer", "Checkpoint", "HubTestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Transformer", "Checkpoint", "HubCore", "Evaluator", "HubTestSupport"]),
        .testTarget(name: "CompressorTests", dependencies: ["Compressor", "Transformer", "Checkpoint", "HubTestSupport"]),
        .testTarget(name: "LawsTests", dependencies: ["Laws"]),
        .testTarget(name: "BuildsTests", dependencies: ["Builds", "Compressor", "Evaluator", "Checkpoint", "HubCore", "HubTestSupport"]),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "Laws", "Compressor", "Evaluator", "Transformer", "Checkpoint", "HubCore", "HubTestSupport", "CArchive"]),
    ]
)
