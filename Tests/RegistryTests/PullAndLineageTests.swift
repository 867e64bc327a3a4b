import Builds
import Evaluator
import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

/// A base with three descendants, each with metrics records whose figures the tests can
/// reason about by hand:
///
///   team/base   loss 3.0, decode 20 ms (p95 24), 600 MB                      measured here
///   team/width  width-prune of base, loss 3.5, decode 14 ms, 420 MB            measured here
///   team/depth  depth-prune of base, loss 4.0, decode 10 ms, 300 MB    measured on "Other CPU"
///   team/tuned  fine-tune of width, loss 3.2, decode 14 ms, 420 MB             measured here
struct HubFamilyFixture {
    let directory: TemporaryDirectory
    let registry: HubRegistry
    let base: Revision, width: Revision, depth: Revision, tuned: Revision
    static let localCPU = HardwareProfile.current().cpuModel
    /// This machine's BLAS build, as its own records name it; a record may claim another.
    static let localBLAS = HardwareProfile.current().blas
    static let otherCPU = "Other CPU @ 1.0GHz"

    init() throws {
        directory = try TemporaryDirectory()
        registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let baseModel = try TinyCheckpoint.uniform(seed: 2)
        base = try Self.commit(baseModel, as: "team/base", in: directory, registry: registry, record: nil)
        let baseWeights = try registry.store.files(of: base.id).first { $0.path == "model.safetensors" }!.sha256

        var narrow = baseModel.config
        narrow.intermediateSize = 8
        width = try Self.commit(TinyCheckpoint(random: narrow, seed: 3), as: "team/width", in: directory, registry: registry,
                                record: ("recipe.json", { parameters in Self.recipe("width-prune", base: baseModel, parameters: parameters, input: baseWeights) }),
                                parent: "team/base")
        var shallow = baseModel.config
        shallow.numHiddenLayers = 1
        depth = try Self.commit(TinyCheckpoint(random: shallow, seed: 4), as: "team/depth", in: directory, registry: registry,
                                record: ("recipe.json", { parameters in Self.recipe("depth-prune", base: baseModel, parameters: parameters, input: baseWeights) }),
                                parent: "team/base")
        let widthWeights = try registry.store.files(of: width.id).first { $0.path == "model.safetensors" }!.sha256
        tuned = try Self.commit(TinyCheckpoint(random: narrow, seed: 5), as: "team/tuned", in: directory, registry: registry,
                                record: ("finetune.json", { _ in Self.fineTune(input: widthWeights, teacher: baseWeights) }), parent: "team/width")

        try record(base, cpu: Self.localCPU, decode: 20, prefill: [32: 40, 128: 100, 512: 400], rss: 600_000_000, loss: 3.0, accuracy: 0.50)
        try record(width, cpu: Self.localCPU, decode: 14, prefill: [32: 28, 128: 70, 512: 280], rss: 420_000_000, loss: 3.5, accuracy: 0.45)
        try record(depth, cpu: Self.otherCPU, decode: 10, prefill: [32: 20, 128: 50, 512: 200], rss: 300_000_000, loss: 4.0, accuracy: 0.40,
                   speed: MachineSpeed(sgemmGFLOPS: 100, memoryGBPS: 10))
        try record(tuned, cpu: Self.localCPU, decode: 14, prefill: [32: 28, 128: 70, 512: 280], rss: 420_000_000, loss: 3.2, accuracy: 0.47)
    }

    /// Writes `model` to `folder` with its lineage record (recipe.json or finetune.json, made
    /// from the model's parameter count), as hubctl compress or finetune leaves a directory.
    static func write(_ model: TinyCheckpoint, to folder: URL, record: (file: String, json: (Int) -> [String: Any])) throws {
        try model.write(to: folder)
        let parameters = ParameterCount(tensors: model.tensors.map { ($0.key, $0.value.shape) }).total
        try JSONSerialization.data(withJSONObject: record.json(parameters), options: [.sortedKeys]).write(to: folder.appendingPathComponent(record.file))
    }

    static func commit(_ model: TinyCheckpoint, as name: String, in directory: TemporaryDirectory, registry: HubRegistry,
                       record: (file: String, json: (Int) -> [String: Any])?, parent: String? = nil) throws -> Revision {
        let folder = directory.path(name.replacingOccurrences(of: "/", with: "-"))
        guard let record, let parent else {
            try model.write(to: folder)
            return try registry.commitDirectory(folder, to: RepositoryName(name), message: "base", author: "test") { files in
                try VariantInspector.record(kind: .base, files: files, sourceJSON: #"{"format":"test","file":"tiny"}"#,
                                            url: { folder.appendingPathComponent($0) })!
            }
        }
        try write(model, to: folder, record: record)
        return try registry.registerVariant(directory: folder, as: RepositoryName(name), parent: RepositoryName(parent), author: "test")
    }

    static func recipe(_ method: String, base: TinyCheckpoint, parameters: Int, input: SHA256Digest) -> [String: Any] {
        let baseParameters = ParameterCount(tensors: base.tensors.map { ($0.key, $0.value.shape) }).total
        let ratio = 1 - Double(parameters) / Double(baseParameters)
        return ["schema_version": 1, "method": method, "requested_ratio": ratio, "achieved_ratio": ratio, "achieved_non_embedding_ratio": ratio,
                "base_parameters": baseParameters, "variant_parameters": parameters, "base_checkpoint_sha256": input.hex,
                "calibration": NSNull(), "seed": 0, "code_version": "test", "created_at": "2026-11-24T00:00:00Z", "details": [String: Any]()]
    }

    static func fineTune(input: SHA256Digest, teacher: SHA256Digest) -> [String: Any] {
        ["schema_version": 1, "parent_checkpoint_sha256": input.hex, "method": "full", "loss": "distillation",
         "distillation": ["teacher_checkpoint_sha256": teacher.hex, "weight": 0.5, "temperature": 2.0],
         "steps": 4, "tokens": 4096, "corpus": ["source": "test", "sha256": "b99bc39e720e5621fb64544fe8cec2efbc106c42980193928dc1cda0057205ad",
                                                 "token_range": [0, 4096]],
         "code_version": "test", "wall_seconds": 1.0, "curve": [Any]()]
    }

    /// `tail` is p95 / p50 of every latency: 1.2 on idle cores; over 2 reads as measured under load.
    func record(_ revision: Revision, cpu: String, decode: Double, prefill: [Int: Double], rss: Int, loss: Double, accuracy: Double,
                speed: MachineSpeed? = nil, blas: String = HubFamilyFixture.localBLAS, tail: Double = 1.2) throws {
        let record = try Self.metrics(model: revision.repository.description, cpu: cpu, decode: decode, prefill: prefill, rss: rss, loss: loss,
                                      accuracy: accuracy, speed: speed, blas: blas, tail: tail)
        _ = try registry.recordMetrics(record, for: revision.repository, revision: revision.id)
    }

    static func metrics(model: String, cpu: String, decode: Double, prefill: [Int: Double], rss: Int, loss: Double, accuracy: Double,
                        speed: MachineSpeed? = nil, blas: String = HubFamilyFixture.localBLAS, tail: Double = 1.2) throws -> MetricsRecord {
        var json: [String: Any] = [
            "schema_version": 1, "model": model, "suite": "full", "created_at": "2026-11-24T00:00:00Z",
            "code_version": "test",
            "hardware": ["cpu_model": cpu, "logical_cores": 2, "memory_bytes": 1 << 34, "blas": blas, "blas_threads": 2, "operating_system": "linux"],
            "parameters": ["total": 10, "embedding": 2, "non_embedding": 8], "bytes_on_disk": 40,
            "loss": ["corpus": "xsum", "documents": 101, "windows": 101, "tokens": 40000, "context": 512, "cross_entropy": loss,
                     "perplexity": exp(loss)],
            "tasks": [["task": "a", "examples": 300, "acc": accuracy, "acc_stderr": 0.02, "acc_norm": accuracy, "acc_norm_stderr": 0.02, "chance": 0.25]],
            "latency": ["prefill": prefill.sorted { $0.key < $1.key }.map { tokens, ms in
                            ["tokens": tokens, "latency": ["p50_ms": ms, "p95_ms": ms * tail], "tokens_per_second": Double(tokens) / ms * 1000] },
                        "decode_per_token": ["p50_ms": decode, "p95_ms": decode * tail], "decode_tokens_per_second": 1000 / decode],
            "peak_rss_bytes": rss, "seconds": 1,
        ]
        if let speed { json["machine_speed"] = ["sgemm_gflops": speed.sgemmGFLOPS, "memory_gbps": speed.memoryGBPS] }
        return try JSONDecoder().decode(MetricsRecord.self, from: JSONSerialization.data(withJSONObject: json))
    }
}

@Suite("Pull by budget and lineage audits", .serialized)
struct PullAndLineageTests {
    /// hubctl with a data directory of its own: otherwise it would send the admin token of
    /// whatever daemon ran in $HUB_HOME (set-up's quickstart leaves one) to the test daemon.
    static func hubctl(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws -> HubctlBinary.Outcome {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("hubctl-home-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        return try HubctlBinary.run(arguments, environment: ["HUB_HOME": home.path].merging(environment) { _, given in given }, stdin: stdin)
    }

    static func selector(speed: MachineSpeed = MachineSpeed(sgemmGFLOPS: 200, memoryGBPS: 20)) -> VariantSelector {
        VariantSelector(cpuModel: HubFamilyFixture.localCPU, blasThreads: 2) { speed }
    }

    @Test("a base's family holds every descendant with its lineage records and metrics")
    func family() throws {
        let fixture = try HubFamilyFixture()
        let members = try fixture.registry.family(of: RepositoryName("team/base"))
        #expect(members.map(\.repository) == ["team/base", "team/width", "team/depth", "team/tuned"])
        #expect(members.map(\.edges.count) == [0, 1, 1, 2])
        #expect(members.last?.edges.last?["loss"]?.stringValue == "distillation")
        #expect(members.allSatisfy { $0.metrics.count == 1 && $0.base == "team/base@\(fixture.base.id)" })
        // A variant is not a base of a family of its own making, but it can root a sub-family.
        #expect(try fixture.registry.family(of: RepositoryName("team/width")).map(\.repository) == ["team/width", "team/tuned"])
        let chain = try fixture.registry.lineage(of: RepositoryName("team/tuned"))
        #expect(chain.map(\.repository) == ["team/tuned", "team/width", "team/base"])
        #expect(chain.first?.record?["parent_checkpoint_sha256"] != nil && chain.last?.record == nil)
    }

    @Test("the budget keeps what fits, by each constraint with its spread, and prefers by quality, speed or size")
    func selection() throws {
        let fixture = try HubFamilyFixture()
        let members = try fixture.registry.family(of: RepositoryName("team/base"))
        let selection = Self.selector().select(members, budget: Budget(maxLatencyMilliseconds: 15))
        #expect(selection.chosen?.repository == "team/tuned")
        #expect(selection.candidates.filter(\.kept).map(\.repository) == ["team/tuned", "team/width", "team/depth"])
        let base = try #require(selection.candidates.first { $0.repository == "team/base" })
        #expect(!base.kept)
        #expect(base.checks.first?.reason.hasPrefix("20.0 ms (spread 20.0 ms–24.0 ms) does not fit") == true)
        // The depth variant was measured elsewhere: its latency is scaled by memory bandwidth 10 → 20 GB/s.
        let depth = try #require(selection.candidates.first { $0.repository == "team/depth" })
        #expect(depth.latencyMilliseconds?.value == 5)
        #expect(depth.latencyMilliseconds?.basis.contains("scaled from \(HubFamilyFixture.otherCPU)") == true)
        #expect(selection.calibration == MachineSpeed(sgemmGFLOPS: 200, memoryGBPS: 20))
        #expect(Self.selector().select(members, budget: Budget(maxLatencyMilliseconds: 15, preference: .speed)).chosen?.repository == "team/depth")
        #expect(Self.selector().select(members, budget: Budget(maxMemoryBytes: 500_000_000, preference: .size)).chosen?.repository == "team/depth")
        // No latency constraint and no speed preference: nothing is calibrated.
        #expect(Self.selector().select(members, budget: Budget(maxLoss: 3.3)).calibration == nil)
        #expect(Self.selector().select(members, budget: Budget(minAccuracy: 0.46)).chosen?.repository == "team/base")

        // A workload: prefill 256 tokens (interpolated between 128 and 512) plus 10 decoded tokens.
        let workload = Self.selector().select(members, budget: Budget(maxLatencyMilliseconds: 400, promptTokens: 256, newTokens: 10))
        let baseWorkload = try #require(workload.candidates.first { $0.repository == "team/base" })
        #expect(abs(baseWorkload.latencyMilliseconds!.value - (200 + 10 * 20)) < 1e-9)
        #expect(baseWorkload.kept)
    }

    @Test("a variant committed again is offered as its current revision only: the superseded one stays in the family, marked, and is never chosen")
    func supersededNotOffered() throws {
        let fixture = try HubFamilyFixture()
        let registry = fixture.registry
        // team/width again (a build run after its stages changed): other weights, measured slower
        // and worse. The old revision's better figures must not win the budget.
        let baseModel = try TinyCheckpoint.uniform(seed: 2)
        let baseWeights = try registry.store.files(of: fixture.base.id).first { $0.path == "model.safetensors" }!.sha256
        var narrow = baseModel.config
        narrow.intermediateSize = 8
        let again = try HubFamilyFixture.commit(TinyCheckpoint(random: narrow, seed: 30), as: "team/width", in: fixture.directory, registry: registry,
                                                record: ("recipe.json", { HubFamilyFixture.recipe("width-prune", base: baseModel, parameters: $0, input: baseWeights) }),
                                                parent: "team/base")
        #expect(again.id != fixture.width.id)
        try fixture.record(again, cpu: HubFamilyFixture.localCPU, decode: 18, prefill: [32: 36], rss: 420_000_000, loss: 3.9, accuracy: 0.41)

        let members = try registry.family(of: RepositoryName("team/base"))
        let widths = members.filter { $0.repository == "team/width" }
        #expect(widths.count == 2)
        #expect(widths.first { $0.revision == fixture.width.id }?.superseded == true)
        #expect(widths.first { $0.revision == again.id }?.isCurrent == true)
        // The base and team/tuned (whose parent is now superseded) are current.
        #expect(members.filter { $0.repository != "team/width" }.allSatisfy { $0.isCurrent })
        // The mark travels over the API's JSON; a family saved before it existed decodes as current.
        let decoded = try JSONDecoder().decode([FamilyMember].self, from: JSONEncoder().encode(members))
        #expect(decoded == members)
        var old = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(widths[0])) as? [String: Any])
        old.removeValue(forKey: "superseded")
        #expect(try JSONDecoder().decode(FamilyMember.self, from: JSONSerialization.data(withJSONObject: old)).isCurrent)

        // Loss ≤ 3.6: the old team/width (3.5) would fit, the current one (3.9) does not.
        let selection = Self.selector().select(members, budget: Budget(maxLoss: 3.6, preference: .size))
        #expect(!selection.candidates.contains { $0.revision == fixture.width.id })
        #expect(selection.candidates.filter { $0.repository == "team/width" }.map(\.revision) == [again.id])
        #expect(selection.chosen?.repository == "team/tuned")
    }

    @Test("a latency measured on this CPU with another BLAS build (fallback kernels) is not this machine's: it is scaled, or it does not count")
    func otherBLASBuild() throws {
        let fixture = try HubFamilyFixture()
        // team/width measured again, newest, under OpenBLAS's Prescott fallback: slower, no machine speed.
        let prescott = "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64"
        try fixture.record(fixture.width, cpu: HubFamilyFixture.localCPU, decode: 60, prefill: [32: 90], rss: 420_000_000, loss: 3.5,
                           accuracy: 0.45, blas: prescott)
        let members = try fixture.registry.family(of: RepositoryName("team/base"))
        let budget = Budget(maxLatencyMilliseconds: 15)
        // Matching the BLAS build: the Prescott record is someone else's; this build's 14 ms counts.
        let here = VariantSelector(cpuModel: HubFamilyFixture.localCPU, blasThreads: 2, blas: HubFamilyFixture.localBLAS) {
            MachineSpeed(sgemmGFLOPS: 200, memoryGBPS: 20)
        }
        let width = try #require(here.select(members, budget: budget).candidates.first { $0.repository == "team/width" })
        #expect(width.latencyMilliseconds?.value == 14 && width.kept)
        // Run under the fallback build, only the Prescott record is this machine's.
        let fallback = VariantSelector(cpuModel: HubFamilyFixture.localCPU, blasThreads: 2, blas: prescott) { MachineSpeed(sgemmGFLOPS: 40, memoryGBPS: 20) }
        let slow = try #require(fallback.select(members, budget: budget).candidates.first { $0.repository == "team/width" })
        #expect(slow.latencyMilliseconds?.value == 60 && !slow.kept)
        #expect(HardwareProfile.blasKernels(prescott) == "Prescott")
        #expect(HardwareProfile.blasKernels("OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64") == "SkylakeX")
        #expect(HardwareProfile.blasKernels("OpenBLAS 0.3.21 NO_LAPACKE") == nil)

        // The laws: a decode point comes from this build's records only.
        let set = try fixture.registry.fitLaws(base: RepositoryName("team/base"), suite: "full", cpuModel: HubFamilyFixture.localCPU, blasThreads: 2,
                                               blas: HubFamilyFixture.localBLAS)
        #expect(set.blas == HubFamilyFixture.localBLAS)
        let mine = FamilyLaws.points(members, metric: "decode_ms", suite: "full", cpuModel: HubFamilyFixture.localCPU, blasThreads: 2,
                                     blas: HubFamilyFixture.localBLAS)
        #expect(mine.map(\.value).sorted() == [14, 14, 20])  // base, width, tuned; not 60
        let underPrescott = FamilyLaws.points(members, metric: "decode_ms", suite: "full", cpuModel: HubFamilyFixture.localCPU, blasThreads: 2,
                                              blas: prescott)
        #expect(underPrescott.map(\.value) == [60])
    }

    @Test("a latency measured under load (decode p95 over 2× p50) is set aside for a quiet one, even an older one; alone, it counts and says so")
    func loadedLatency() throws {
        let fixture = try HubFamilyFixture()
        let budget = Budget(maxLatencyMilliseconds: 15)
        // team/width measured again, newest, while something else took the cores: 34 ms p50, 115 ms p95.
        try fixture.record(fixture.width, cpu: HubFamilyFixture.localCPU, decode: 34, prefill: [32: 60], rss: 420_000_000, loss: 3.5,
                           accuracy: 0.45, tail: 3.4)
        let members = try fixture.registry.family(of: RepositoryName("team/base"))
        let width = try #require(Self.selector().select(members, budget: budget).candidates.first { $0.repository == "team/width" })
        #expect(width.latencyMilliseconds?.value == 14 && width.kept)
        #expect(width.latencyMilliseconds?.high == 14 * 1.2)  // the loaded tail is not the spread either
        #expect(width.latencyMilliseconds?.basis.hasSuffix("1 record(s); 1 record(s) measured under load set aside") == true)
        // The laws read the same quiet record.
        let points = FamilyLaws.points(members, metric: "decode_ms", suite: "full", cpuModel: HubFamilyFixture.localCPU, blasThreads: 2,
                                       blas: HubFamilyFixture.localBLAS)
        #expect(points.map(\.value).sorted() == [14, 14, 20])

        // Only a loaded record on this machine (team/depth was measured quietly, but elsewhere):
        // it counts rather than nothing, and the reason says to measure again.
        try fixture.record(fixture.depth, cpu: HubFamilyFixture.localCPU, decode: 30, prefill: [32: 60], rss: 300_000_000, loss: 4.0,
                           accuracy: 0.4, tail: 5)
        let again = try fixture.registry.family(of: RepositoryName("team/base"))
        let depth = try #require(Self.selector().select(again, budget: budget).candidates.first { $0.repository == "team/depth" })
        #expect(depth.latencyMilliseconds?.value == 30 && !depth.kept)
        #expect(depth.latencyMilliseconds?.basis.contains("measured under load (decode p95 over 2× its p50): re-measure on idle cores") == true)
        #expect(try HubFamilyFixture.metrics(model: "m", cpu: "c", decode: 30, prefill: [:], rss: 1, loss: 3, accuracy: 0.5, tail: 1.9)
            .latency?.measuredUnderLoad == false)
    }

    @Test("when nothing fits, the nearest come first and interpolation suggests a ratio and the commands that build it")
    func nothingFits() throws {
        let fixture = try HubFamilyFixture()
        let members = try fixture.registry.family(of: RepositoryName("team/base"))
        // Same speed as where depth was measured, so its latency stays 10 ms.
        let selector = Self.selector(speed: MachineSpeed(sgemmGFLOPS: 100, memoryGBPS: 10))
        let selection = selector.select(members, budget: Budget(maxLatencyMilliseconds: 12, maxLoss: 3.85))
        #expect(selection.chosen == nil)
        #expect(selection.candidates.first?.repository == "team/depth")  // misses only the loss, by 4 %
        let widthRatio = try #require(selection.candidates.first { $0.repository == "team/width" }?.ratio)
        let suggestion = try #require(selection.suggestions.first { $0.method == "width-prune" })
        // Latency falls 6 ms from r = 0 to the width variant's ratio: 12 ms needs 4/3 of that ratio.
        #expect(suggestion.ratio >= widthRatio * 4 / 3 - 1e-9 && suggestion.ratio < widthRatio * 4 / 3 + 0.01)
        #expect(suggestion.basis.contains("extrapolated"))
        #expect(suggestion.predicted["latency_ms"]! <= 12 && suggestion.predicted["loss"]! <= 3.85)
        #expect(suggestion.recipe.compression == .init(method: "width-prune", ratio: (suggestion.ratio * 100).rounded(.up) / 100))
        #expect(suggestion.recipe.base.hasPrefix("team/base") && suggestion.commands.last?.hasPrefix("hubctl build submit") == true)
        #expect(try BuildRecipe.decode(JSONEncoder().encode(suggestion.recipe), knownMethods: BuildRecipe.knownMethods) == suggestion.recipe)
    }

    @Test("hubctl pull downloads the chosen variant into a cache huggingface_hub and transformers load offline; a corrupt partial file is refused")
    func pullIntoCache() async throws {
        let fixture = try HubFamilyFixture()
        let cache = fixture.directory.path("hf-cache")
        let tunedFiles = try fixture.registry.store.files(of: fixture.tuned.id)
        try await withServer(fixture.registry) { port in
            let endpoint = "http://127.0.0.1:\(port)"
            // A corrupt partial download of the weights, full length: hashed, refused, deleted.
            let weights = tunedFiles.first { $0.path == "model.safetensors" }!
            let blobs = cache.appendingPathComponent("models--team--tuned/blobs")
            try FileManager.default.createDirectory(at: blobs, withIntermediateDirectories: true)
            let partial = blobs.appendingPathComponent(weights.sha256.hex + ".incomplete")
            try Data(repeating: 7, count: weights.size).write(to: partial)
            let arguments = ["pull", "team/base", "--max-latency", "15ms", "--cache-dir", cache.path, "--endpoint", endpoint,
                             "--data-dir", fixture.directory.path("client").path]
            let refused = try Self.hubctl(arguments)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("model.safetensors") && refused.stderr.contains("hash"))
            #expect(!FileManager.default.fileExists(atPath: partial.path))
            #expect(!FileManager.default.fileExists(atPath: blobs.appendingPathComponent(weights.sha256.hex).path))

            // Half of the right bytes: the download resumes after them.
            let blobURL = try fixture.registry.blobs.fileURL(for: weights.sha256)
            try Data(try Data(contentsOf: blobURL).prefix(weights.size / 2)).write(to: partial)
            let pulled = try Self.hubctl(arguments)
            #expect(pulled.status == 0, "\(pulled.stderr)")
            let snapshot = pulled.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(snapshot == cache.appendingPathComponent("models--team--tuned/snapshots/\(fixture.tuned.id)").path)
            #expect(pulled.stderr.contains("CHOSEN   team/tuned@"))
            #expect(pulled.stderr.contains("✗ latency (per decoded token) ≤ 15.0 ms: 20.0 ms (spread 20.0 ms–24.0 ms) does not fit"))
            for file in tunedFiles {
                #expect(try SHA256Digest.ofFile(at: URL(fileURLWithPath: snapshot).appendingPathComponent(file.path)) == file.sha256)
            }
            // huggingface_hub and transformers, offline, find it by name and by revision.
            let script = """
                import os
                os.environ['HF_HUB_OFFLINE'] = '1'
                from transformers import AutoConfig
                from huggingface_hub import snapshot_download, hf_hub_download
                a = snapshot_download('team/tuned', cache_dir='\(cache.path)', local_files_only=True)
                b = snapshot_download('team/tuned', revision='\(fixture.tuned.id)', cache_dir='\(cache.path)', local_files_only=True)
                c = hf_hub_download('team/tuned', 'finetune.json', cache_dir='\(cache.path)', local_files_only=True)
                config = AutoConfig.from_pretrained('team/tuned', cache_dir='\(cache.path)', local_files_only=True)
                print(a == b, os.path.realpath(a), config.model_type, config.intermediate_size, open(c).read(20))
                """
            let (status, output) = try HuggingFaceProtocolTests.python(script, port: 9, cache: cache)
            #expect(status == 0, "\(output)")
            #expect(output.hasPrefix("True \(snapshot) llama 8 "))

            // Nothing fits: exit 3, the nearest and a suggestion; nothing downloaded.
            let none = try Self.hubctl(["pull", "team/base", "--max-loss", "2.5", "--cache-dir", fixture.directory.path("none").path,
                                             "--endpoint", endpoint, "--json"])
            #expect(none.status == 3)
            let json = try JSONSerialization.jsonObject(with: Data(none.stdout.utf8)) as? [String: Any]
            #expect((json?["selection"] as? [String: Any])?["chosen"] == nil)
            #expect(!FileManager.default.fileExists(atPath: fixture.directory.path("none").path))
            let usage = try Self.hubctl(["pull", "team/base", "--endpoint", endpoint])
            #expect(usage.status == 64 && usage.stderr.contains("give at least one constraint"))
        }
    }

    @Test("hubctl lineage shows the chain; --audit passes on intact bytes, locally and over HTTP, and names the first mismatch")
    func lineageAudit() async throws {
        let fixture = try HubFamilyFixture()
        let dataDir = fixture.registry.dataDirectory.path
        let shown = try Self.hubctl(["lineage", "team/tuned", "--data-dir", dataDir])
        #expect(shown.status == 0)
        #expect(shown.stdout.contains("full fine-tune, distillation, 4096 tokens"))
        #expect(shown.stdout.contains("width-prune r = "))
        let audited = try Self.hubctl(["lineage", "team/tuned", "--audit", "--data-dir", dataDir])
        #expect(audited.status == 0, "\(audited.stderr)")
        #expect(audited.stdout.contains("audit passed"))
        #expect(audited.stdout.contains("the fine-tuning corpus this hubctl pins"))
        #expect(audited.stdout.contains("distillation teacher"))
        try await withServer(fixture.registry) { port in
            let remote = try Self.hubctl(["lineage", "team/tuned@\(fixture.tuned.id)", "--audit", "--json", "--endpoint", "http://127.0.0.1:\(port)"])
            #expect(remote.status == 0, "\(remote.stderr)")
            let report = try JSONSerialization.jsonObject(with: Data(remote.stdout.utf8)) as? [String: Any]
            #expect((report?["chain"] as? [Any])?.count == 3)
            let findings = report?["findings"] as? [[String: Any]] ?? []
            #expect(!findings.isEmpty && findings.allSatisfy { $0["status"] as? String == "ok" })
        }
        // One flipped byte in the width variant's weights: the audit fails there first.
        let weights = try fixture.registry.store.files(of: fixture.width.id).first { $0.path == "model.safetensors" }!
        let blob = try fixture.registry.blobs.fileURL(for: weights.sha256)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: blob.path)
        var bytes = try Data(contentsOf: blob)
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: blob)
        let failed = try Self.hubctl(["lineage", "team/tuned", "--audit", "--data-dir", dataDir])
        #expect(failed.status == 4)
        #expect(failed.stderr.contains("first mismatch at team/width@\(fixture.width.id), bytes of model.safetensors"))
    }

    @Test("--any-base chooses among every base's family: only a variant of the other base fits this budget")
    func anyBase() async throws {
        let fixture = try HubFamilyFixture()
        // A second, smaller base with one variant, measured here: 6 ms per token, loss 3.9.
        var small = try TinyCheckpoint.uniform(seed: 9).config
        small.hiddenSize = 8
        small.numAttentionHeads = 2
        let smallModel = TinyCheckpoint(random: small, seed: 9)
        let otherBase = try HubFamilyFixture.commit(smallModel, as: "other/base", in: fixture.directory, registry: fixture.registry, record: nil)
        let otherWeights = try fixture.registry.store.files(of: otherBase.id).first { $0.path == "model.safetensors" }!.sha256
        var smaller = small
        smaller.intermediateSize = 6
        let otherVariant = try HubFamilyFixture.commit(
            TinyCheckpoint(random: smaller, seed: 10), as: "other/width", in: fixture.directory, registry: fixture.registry,
            record: ("recipe.json", { HubFamilyFixture.recipe("width-prune", base: smallModel, parameters: $0, input: otherWeights) }),
            parent: "other/base")
        try fixture.record(otherBase, cpu: HubFamilyFixture.localCPU, decode: 8, prefill: [128: 30], rss: 200_000_000, loss: 3.6, accuracy: 0.41)
        try fixture.record(otherVariant, cpu: HubFamilyFixture.localCPU, decode: 6, prefill: [128: 25], rss: 150_000_000, loss: 3.9, accuracy: 0.40)
        try await withServer(fixture.registry) { port in
            // team/depth's latency was measured elsewhere and scales with this machine's speed;
            // its loss (4.0) keeps it out whatever that speed.
            let arguments = ["pull", "--any-base", "--max-latency", "7ms", "--max-loss", "3.95", "--dry-run", "--json",
                             "--endpoint", "http://127.0.0.1:\(port)"]
            let answer = try Self.hubctl(arguments)
            #expect(answer.status == 0, "\(answer.stderr)")
            let selection = (try JSONSerialization.jsonObject(with: Data(answer.stdout.utf8)) as? [String: Any])?["selection"] as? [String: Any]
            let chosen = selection?["chosen"] as? [String: Any]
            #expect(chosen?["repository"] as? String == "other/width")
            #expect(chosen?["base"] as? String == "other/base@\(otherBase.id)")
            #expect((selection?["candidates"] as? [Any])?.count == 6)
            // Pinned to the first base, the same budget fits nothing there.
            let pinned = try Self.hubctl(["pull", "team/base", "--max-latency", "7ms", "--max-loss", "3.95", "--dry-run",
                                               "--endpoint", "http://127.0.0.1:\(port)"])
            #expect(pinned.status == 3 && pinned.stderr.contains("nothing fits this budget"))
        }
    }

    @Test("the audit catches an edge whose parent is gone and a recipe whose input sha256 does not match the parent's weights")
    func auditCatchesBrokenEdges() throws {
        let fixture = try HubFamilyFixture()
        let database = (fixture.registry.store as! SQLiteMetadataStore).database
        let dataDir = fixture.registry.dataDirectory.path
        // The recipe of team/depth rewritten to name other weights.
        let edge = try #require(try fixture.registry.store.lineage(of: fixture.depth.id))
        let zeros = String(repeating: "0", count: 64)
        let baseWeights = try fixture.registry.store.files(of: fixture.base.id).first { $0.path == "model.safetensors" }!.sha256.hex
        try database.query("UPDATE lineage_edges SET recipe_json = ? WHERE child_revision_id = ?",
                           [.text(edge.recipeJSON.replacingOccurrences(of: baseWeights, with: zeros)), .text(fixture.depth.id)])
        let mismatched = try Self.hubctl(["lineage", "team/depth", "--audit", "--data-dir", dataDir])
        #expect(mismatched.status == 4)
        #expect(mismatched.stderr.contains("first mismatch at team/depth@\(fixture.depth.id), input weights: the record names \(zeros)"))
        // team/width's edge gone (as when a child is mirrored without its parent): a compressed root.
        try database.query("DELETE FROM lineage_edges WHERE child_revision_id = ?", [.text(fixture.width.id)])
        let orphan = try Self.hubctl(["lineage", "team/tuned", "--audit", "--data-dir", dataDir])
        #expect(orphan.status == 4)
        #expect(orphan.stderr.contains("first mismatch at team/width@\(fixture.width.id), lineage: a compressed variant with no edge"))
    }

    @Test("login checks a token before saving it (0600, per endpoint); whoami finds the daemon by $HF_ENDPOINT and sends the saved token; completions print")
    func loginAndWhoami() async throws {
        let fixture = try HubFamilyFixture()
        let client = fixture.directory.path("client").path
        try await withServer(fixture.registry) { port in
            let endpoint = "http://127.0.0.1:\(port)"
            let admin = try #require(AdminTokenFile.read(in: fixture.registry.dataDirectory))
            let anonymous = try Self.hubctl(["whoami", "--data-dir", client], environment: ["HF_ENDPOINT": endpoint])
            #expect(anonymous.status != 0 && anonymous.stderr.contains("run hubctl login"))
            let refused = try Self.hubctl(["login", "--endpoint", endpoint, "--token", "hub_wrong", "--data-dir", client])
            #expect(refused.status == 1 && refused.stderr.contains("HTTP 401"))
            let credentials = fixture.directory.path("client/credentials.json")
            #expect(!FileManager.default.fileExists(atPath: credentials.path))
            let login = try Self.hubctl(["login", "--endpoint", endpoint, "--data-dir", client], stdin: admin + "\n")
            #expect(login.status == 0, "\(login.stderr)")
            let mode = try FileManager.default.attributesOfItem(atPath: credentials.path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let whoami = try Self.hubctl(["whoami", "--json", "--data-dir", client], environment: ["HF_ENDPOINT": endpoint])
            #expect(whoami.status == 0, "\(whoami.stderr)")
            let identity = try JSONSerialization.jsonObject(with: Data(whoami.stdout.utf8)) as? [String: String]
            #expect(identity?["endpoint"] == endpoint && identity?["scope"] == "admin")
            // $HUB_ENDPOINT wins over $HF_ENDPOINT: no daemon there, so it fails, saying where to look.
            let wrong = try Self.hubctl(["whoami", "--data-dir", client], environment: ["HF_ENDPOINT": endpoint, "HUB_ENDPOINT": "http://127.0.0.1:9",
                                                                                          "HUB_TOKEN": admin])
            #expect(wrong.status == 1 && wrong.stderr.contains("127.0.0.1:9"))
            let logout = try Self.hubctl(["login", "--logout", "--endpoint", endpoint, "--data-dir", client])
            #expect(logout.status == 0 && logout.stdout.contains("forgot"))
            #expect(try Self.hubctl(["whoami", "--data-dir", client], environment: ["HF_ENDPOINT": endpoint]).status != 0)
        }
        let completion = try Self.hubctl(["completions", "bash"])
        #expect(completion.status == 0 && completion.stdout.contains("_hubctl") && completion.stdout.contains("lineage"))
        #expect(try Self.hubctl(["completions", "tcsh"]).status == 64)
    }

    @Test("lineage records are checked when registered: a fine-tune record naming other weights is refused")
    func fineTuneLineageChecked() throws {
        let fixture = try HubFamilyFixture()
        let folder = fixture.directory.path("team-tuned")  // holds finetune.json naming team/width's weights
        #expect(throws: RegistryError.self) {
            try fixture.registry.registerVariant(directory: folder, as: RepositoryName("team/wrong"), parent: RepositoryName("team/base"), author: "t")
        }
        #expect(try fixture.registry.store.repository(RepositoryName("team/wrong")) == nil)
    }
}
