import CBLASKernels
import COpenBLAS
import Checkpoint
import Foundation

/// A row-major matrix view ([rows, columns], PyTorch's [out, in] for weights): fp32 values,
/// or GGML Q8_0/Q4_0 blocks that `Kernels.linear` multiplies with as they are. The memory
/// belongs to someone else: a memory-mapped checkpoint or a `FloatBuffer`.
public struct Matrix: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    /// The blocks of a quantized matrix; nil for fp32.
    public let quantized: QuantizedMatrix?
    private let values: UnsafePointer<Float>?

    public init(data: UnsafePointer<Float>, rows: Int, columns: Int) {
        values = data
        quantized = nil
        self.rows = rows
        self.columns = columns
    }

    public init(quantized: QuantizedMatrix) {
        values = nil
        self.quantized = quantized
        rows = quantized.rows
        columns = quantized.columns
    }

    /// The fp32 values. Only the runtime's products read quantized weights; code that needs
    /// every value as fp32 (training, compression) loads fp32 checkpoints, and `ModelWeights`
    /// refuses it a quantized one (`requireFloat`) before this could be reached.
    public var data: UnsafePointer<Float> {
        guard let values else { preconditionFailure("a \(quantized!.type) matrix was read as fp32") }
        return values
    }

    /// Bytes of weight data: what a product streams.
    public var byteCount: Int { quantized.map { $0.rows * $0.rowBytes } ?? rows * columns * 4 }

    /// Row `index` as fp32 into `out` (an embedding lookup).
    public func copyRow(_ index: Int, into out: UnsafeMutablePointer<Float>) {
        if let quantized {
            QuantizedKernels.dequantize(quantized, rows: index, count: 1, into: out)
        } else {
            out.update(from: data + index * columns, count: columns)
        }
    }
}

/// A matrix stored as GGML blocks of 32 weights (`QuantizedTensors` describes the layout).
public struct QuantizedMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let blocks: UnsafeRawPointer
    public let rows: Int
    public let columns: Int

    public init(type: GGMLType, blocks: UnsafeRawPointer, rows: Int, columns: Int) {
        precondition(QuantizedTensors.supported.contains(type) && columns % 32 == 0, "\(type) rows of \(columns)")
        self.type = type
        self.blocks = blocks
        self.rows = rows
        self.columns = columns
    }

    public var rowBytes: Int { columns / type.blockSize * type.bytesPerBlock }
}

/// An owned, 64-byte aligned fp32 allocation (activations, converted weights, caches).
public final class FloatBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { pointer.initialize(repeating: 0, count: max(count, 1)) }
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count, zeroed: false)
        values.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: values.count) }
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public func matrix(rows: Int, columns: Int) -> Matrix {
        precondition(rows * columns <= count)
        return Matrix(data: pointer, rows: rows, columns: columns)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// Which kernels OpenBLAS runs (its own name for them), and the set this process switched to
/// when OpenBLAS's detection had fallen back to kernels older than the CPU, else nil: on a CPU
/// it does not know, OpenBLAS 0.3.21 runs SSE3 kernels at a fifth of the sgemm speed
/// (Sources/CBLASKernels says how the switch is made).
public enum BLASKernels {
    public static var name: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }
    public static var override: String? { hub_blas_kernels_override().map { String(cString: $0) } }
}

/// The runtime's thread setting. OpenBLAS keeps one global pool, so it is process-wide.
public enum BLASThreads {
    public static var count: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// Runs `body` with OpenBLAS's idle workers spinning at most 2^exponent CPU cycles after
    /// a call before they sleep (the library's default is 2^28, about 0.1 s), unless the user
    /// set OPENBLAS_THREAD_TIMEOUT. Spinning saves a wake-up between calls that follow each
    /// other closely (decode); it takes the cores from work that runs between calls on other
    /// threads (`Parallel.rows`). Only for a caller with no other thread in a BLAS call: the
    /// workers are stopped, and start again at the next call, on entry and on exit.
    public static func withSpinExponent<T>(_ exponent: Int, _ body: () throws -> T) rethrows -> T {
        guard getenv("OPENBLAS_THREAD_TIMEOUT") == nil else { return try body() }
        hub_blas_set_spin_exponent(Int32(max(4, min(30, exponent))))
        defer { hub_blas_set_spin_exponent(0) }
        return try body()
    }
}
