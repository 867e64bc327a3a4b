import Checkpoint
import Compressor
import Evaluator
import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing
import Transformer

@Suite("Compressed variants, lineage and metrics in the registry", .serialized)
struct LineageTests {
    @Test("a variant registers (locally and pushed over HTTP) with a lineage edge carrying its recipe; lineage that does not check out is refused")
    func registerVariant() async throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let baseName = try RepositoryName("smollm2/base")
        let base = try BaseModelImporter(registry: registry).importGGUF(at: Assets.modelGGUF(), as: baseName, author: "test").revision

        let model = try ConvertedModel.directory()
        let variantDirectory = directory.path("variant")
        let recipe = try Compressor(method: WeightOnlyWidthPruning()).compress(
            config: model.appendingPathComponent("config.json"), weights: model.appendingPathComponent("model.safetensors"),
            companions: ["tokenizer.json": model.appendingPathComponent("tokenizer.json")], ratio: 0.1, calibration: nil,
            output: variantDirectory)

        let variantName = try RepositoryName("smollm2/variant")
        let revision = try registry.registerVariant(directory: variantDirectory, as: variantName, parent: baseName, author: "test")
        let card = try registry.card(variantName)
        #expect(card.kind == .compressed)
        #expect(card.lineage?.parentRevision == base.id)
        #expect(card.lineage?.recipe["method"]?.stringValue == "weight-prune")
        #expect(card.parameters.total == recipe.variantParameters)
        #expect(card.shape?.heterogeneous == true)
        #expect(try registry.card(baseName).shape?.heterogeneous == false)
        #expect(card.revision == revision.id)
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/model-card.schema.json"))
        #expect(validator.violations(of: try JSONSerialization.jsonObject(with: JSONEncoder().encode(card))) == [])

        // The same variant pushed to the daemon: the lineage is checked against the parent the
        // same way, and a metrics record posted over HTTP lands on its card.
        let metricsJSON = """
        {"schema_version": 1, "model": "smollm2/pushed", "suite": "smoke", "created_at": "2026-11-23T00:00:00Z", "code_version": "test",
         "hardware": {"cpu_model": "cpu", "logical_cores": 2, "memory_bytes": 1, "blas": "OpenBLAS", "blas_threads": 2, "operating_system": "linux"},
         "parameters": {"total": 10, "embedding": 2, "non_embedding": 8}, "bytes_on_disk": 2, "loss": null,
         "tasks": [], "latency": null, "peak_rss_bytes": 0, "seconds": 1}
        """
        try await withServer(registry) { port in
            let client = HubClient(endpoint: "http://127.0.0.1:\(port)", token: AdminTokenFile.read(in: registry.dataDirectory))
            var options = HubClient.PushOptions()
            options.lineageParent = "smollm2/base@main"
            let pushed = try client.push(directory: variantDirectory, to: RepositoryName("smollm2/pushed"), options: options)
            let pushedCard = try registry.card(RepositoryName("smollm2/pushed"))
            #expect(pushedCard.revision == pushed.revision && pushedCard.kind == .compressed)
            #expect(pushedCard.lineage?.parentRevision == base.id)
            #expect(pushedCard.parameters == card.parameters)
            #expect(pushedCard.message.contains("weight-prune"))
            let posted = try rawRequest("POST", port: port, path: "/api/models/smollm2/pushed/metrics/main", body: Data(metricsJSON.utf8),
                                        token: client.token)
            #expect(posted.status == 201)
            #expect(try registry.card(RepositoryName("smollm2/pushed")).metrics.count == 1)
            let remoteCard = try rawRequest("GET", port: port, path: "/api/models/smollm2/pushed/card")
            #expect((remoteCard.json?["lineage"] as? [String: Any])?["parent_revision"] as? String == base.id)
            options.lineageParent = "smollm2/variant"   // a variant, but not the one the recipe names
            #expect {
                try client.push(directory: variantDirectory, to: RepositoryName("smollm2/wrong-parent"), options: options)
            } throws: { error in
                guard case HubClientError.server(_, 422, "InvalidLineage", let message) = error else { return false }
                return message.contains(base.id) == false && message.contains("sha256")
            }
            #expect(try registry.store.repository(RepositoryName("smollm2/wrong-parent")) == nil)
        }

        // A recipe naming other weights than the parent's is refused, and nothing is committed.
        var tampered = try JSONSerialization.jsonObject(with: Data(contentsOf: variantDirectory.appendingPathComponent("recipe.json"))) as! [String: Any]
        tampered["base_checkpoint_sha256"] = String(repeating: "0", count: 64)
        try JSONSerialization.data(withJSONObject: tampered).write(to: variantDirectory.appendingPathComponent("recipe.json"))
        #expect(throws: RegistryError.self) {
            try registry.registerVariant(directory: variantDirectory, as: try RepositoryName("smollm2/bad"), parent: baseName, author: "test")
        }
        #expect(try registry.store.repository(try RepositoryName("smollm2/bad")) == nil)
        #expect(throws: RegistryError.revisionNotFound(repository: baseName, revision: "nope")) {
            try registry.registerVariant(directory: variantDirectory, as: variantName, parent: baseName, parentRevision: "nope", author: "test")
        }
        #expect(throws: RegistryError.self) {
            try registry.registerVariant(directory: directory.path("missing"), as: variantName, parent: baseName, author: "test")
        }
    }

    @Test("metrics records are stored beside a variant and summarized on its card")
    func metrics() throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let name = try RepositoryName("team/model")
        let source = directory.path("files")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: source.appendingPathComponent("config.json"))
        _ = try registry.commitDirectory(source, to: name, message: "m", author: "a") { files in
            VariantRecord(kind: .base, architecture: "llama", parameters: 10, embeddingParameters: 2, bytes: 2, configJSON: "{}", sourceJSON: nil)
        }
        let json = """
        {"schema_version": 1, "model": "team/model", "suite": "smoke", "created_at": "2026-11-23T00:00:00Z", "code_version": "test",
         "hardware": {"cpu_model": "cpu", "logical_cores": 2, "memory_bytes": 1, "blas": "OpenBLAS", "blas_threads": 2, "operating_system": "linux"},
         "parameters": {"total": 10, "embedding": 2, "non_embedding": 8}, "bytes_on_disk": 2,
         "loss": {"corpus": "c", "documents": 1, "windows": 1, "tokens": 5, "context": 512, "cross_entropy": 3.25, "perplexity": 25.8},
         "tasks": [], "latency": null, "peak_rss_bytes": 0, "seconds": 1}
        """
        let record = try JSONDecoder().decode(MetricsRecord.self, from: Data(json.utf8))
        _ = try registry.recordMetrics(record, for: name)
        _ = try registry.recordMetrics(record, for: name)
        let card = try registry.card(name)
        #expect(card.metrics.count == 2)
        #expect(card.metrics.first?.crossEntropy == 3.25)
        #expect(card.metrics.first?.cpuModel == "cpu")
        let stored = try registry.store.metrics(of: card.revision)
        #expect(try JSONDecoder().decode(MetricsRecord.self, from: Data(stored[0].recordJSON.utf8)) == record)
        #expect(throws: RegistryError.variantNotFound(revision: String(repeating: "a", count: 40))) {
            try registry.store.recordMetrics(StoredMetrics(revisionID: String(repeating: "a", count: 40), suite: "smoke", cpuModel: "c",
                                                           blasThreads: 1, recordJSON: "{}", createdAt: "now"))
        }
    }

    @Test("compress → quantize is one lineage: the Q8_0 variant registers with its quantization record, keeps its parent's parameter count, and runs from its blocks close to its fp32 parent")
    func quantizedVariant() throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let baseName = try RepositoryName("smollm2/base")
        _ = try BaseModelImporter(registry: registry).importGGUF(at: Assets.modelGGUF(), as: baseName, author: "test")
        let model = try ConvertedModel.directory()
        let pruned = directory.path("pruned")
        _ = try Compressor(method: WeightOnlyWidthPruning()).compress(
            config: model.appendingPathComponent("config.json"), weights: model.appendingPathComponent("model.safetensors"),
            companions: ["tokenizer.json": model.appendingPathComponent("tokenizer.json")], ratio: 0.1, calibration: nil, output: pruned)
        let prunedName = try RepositoryName("smollm2/pruned")
        let prunedRevision = try registry.registerVariant(directory: pruned, as: prunedName, parent: baseName, author: "test")

        let quantized = directory.path("pruned-q8")
        let files = ModelFiles(config: pruned.appendingPathComponent("config.json"), weights: pruned.appendingPathComponent("model.safetensors"),
                               tokenizer: pruned.appendingPathComponent("tokenizer.json"), tokenizerConfig: nil)
        let record = try ModelQuantizer.quantize(files, to: .q8_0, destination: quantized)
        // weight-prune leaves FFN widths that are not whole blocks of 32: those down_proj matrices
        // stay fp32 and are named, so the file shrinks by less than Q8_0's 3.76× (measured 2.5×).
        #expect(!record.keptMatrices.isEmpty && record.keptMatrices.allSatisfy { $0.name.hasSuffix("down_proj.weight") })
        #expect(record.bytes < record.parentBytes / 2)
        let name = try RepositoryName("smollm2/pruned-q8")
        _ = try registry.registerVariant(directory: quantized, as: name, parent: prunedName, author: "test")
        let card = try registry.card(name)
        #expect(card.lineage?.parentRevision == prunedRevision.id)
        #expect(card.lineage?.recipe["type"]?.stringValue == "q8_0")
        #expect(card.parameters == (try registry.card(prunedName)).parameters)
        #expect(card.message.contains("q8_0 quantization"))
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/model-card.schema.json"))
        #expect(validator.violations(of: try JSONSerialization.jsonObject(with: JSONEncoder().encode(card))) == [])
        // A record naming other weights than the parent's is refused, and nothing is registered.
        #expect(throws: RegistryError.self) {
            _ = try registry.registerVariant(directory: quantized, as: RepositoryName("smollm2/wrong-parent"), parent: baseName, author: "test")
        }
        #expect(try registry.store.repository(RepositoryName("smollm2/wrong-parent")) == nil)

        // The real model from its blocks against its fp32 parent on a real sentence: Q8_0 moves the
        // next-token distribution by little (measured: KL 0.001 nats, 96% same argmax on the base).
        let parent = try LlamaModel(directory: pruned), blocks = try LlamaModel(directory: quantized)
        #expect(blocks.weights.quantization == .q8_0 && Double(blocks.weights.weightBytes) < 0.5 * Double(parent.weights.weightBytes))
        let tokenizer = try BPETokenizer(huggingFaceJSON: pruned.appendingPathComponent("tokenizer.json"), tokenizerConfig: nil)
        let tokens = tokenizer.encode("The history of the railway in Britain began in the early nineteenth century, when engineers in the north of England built lines to carry coal.")
        let p = parent.logits(try parent.forwardPacked([tokens]), rows: tokens.count).array
        let q = blocks.logits(try blocks.forwardPacked([tokens]), rows: tokens.count).array
        let vocabulary = parent.config.vocabSize
        var kl = 0.0, agree = 0
        func logSoftmax(_ row: ArraySlice<Float>) -> [Double] {
            let top = Double(row.max()!)
            let z = top + log(row.reduce(0.0) { $0 + exp(Double($1) - top) })
            return row.map { Double($0) - z }
        }
        for row in 0 ..< tokens.count {
            let a = logSoftmax(p[row * vocabulary ..< (row + 1) * vocabulary]), b = logSoftmax(q[row * vocabulary ..< (row + 1) * vocabulary])
            for i in 0 ..< vocabulary { kl += exp(a[i]) * (a[i] - b[i]) }
            if a.indices.max(by: { a[$0] < a[$1] }) == b.indices.max(by: { b[$0] < b[$1] }) { agree += 1 }
        }
        kl /= Double(tokens.count)
        #expect(kl < 0.01, "mean KL \(kl)")
        #expect(Double(agree) / Double(tokens.count) >= 0.85, "\(agree) of \(tokens.count) argmax agree")
    }
}
