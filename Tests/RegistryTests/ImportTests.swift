import Checkpoint
import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

@Suite("Importing the shipped base model")
struct ImportTests {
    @Test("import stores the converted checkpoint, its card describes it, and a re-import changes nothing")
    func importAndCard() throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let name = try RepositoryName("smollm2/SmolLM2-135M-Instruct")
        let gguf = try Assets.modelGGUF()
        let result = try BaseModelImporter(registry: registry).importGGUF(at: gguf, as: name, author: "test")
        #expect(!result.alreadyImported)

        let card = try registry.card(name)
        #expect(card.revision == result.revision.id)
        #expect(card.kind == .base)
        #expect(card.architecture == "llama")
        #expect(card.parameters.total == 134_515_008)
        #expect(card.parameters.embedding == 49152 * 576)
        #expect(card.shape?.layers == 30)
        #expect(card.shape?.keyValueHeads == 3)
        #expect(card.lineage == nil)
        #expect(card.source?["sha256"]?.stringValue == (try SHA256Digest.ofFile(at: gguf)).hex)
        #expect(card.files.map(\.path) == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        #expect(card.bytes == card.files.reduce(0) { $0 + $1.size })

        // Every stored file hashes to its address, and the weights are the reference conversion.
        for file in card.files { #expect(try registry.blobs.verify(file.sha256), "\(file.path)") }
        let weights = try SafetensorsFile(path: registry.blobs.fileURL(for: card.files[2].sha256).path)
        let reference = try #require(try Assets.fixtureJSON("smollm2-135m-hf-tensors.json") as? [String: Any])
        let digests = try #require(reference["tensors"] as? [String: String])
        let embed = try #require(weights["model.embed_tokens.weight"])
        #expect(SHA256Digest.of(weights.bytes(of: embed)).hex == digests["model.embed_tokens.weight"])

        // The JSON card satisfies its schema.
        let encoder = JSONEncoder()
        let json = try JSONSerialization.jsonObject(with: encoder.encode(card))
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/model-card.schema.json"))
        #expect(validator.violations(of: json) == [])

        let again = try BaseModelImporter(registry: registry).importGGUF(at: gguf, as: name, author: "test")
        #expect(again.alreadyImported)
        #expect(again.revision.id == result.revision.id)
        #expect(try registry.card(name).revision == result.revision.id)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("hub/tmp").path).isEmpty)
    }

    @Test("a GGUF that cannot be imported leaves the registry as it was")
    func failedImportChangesNothing() throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        var builder = GGUFBuilder()
        builder.metadata = [("general.architecture", .string("mamba"))]
        builder.tensors = [GGUFBuilder.f32Tensor("x", [1])]
        try builder.write(to: directory.path("bad.gguf"))
        let name = try RepositoryName("team/bad")
        #expect(throws: ConversionError.self) {
            try BaseModelImporter(registry: registry).importGGUF(at: directory.path("bad.gguf"), as: name, author: "test")
        }
        #expect(try registry.store.repositories().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("hub/tmp").path).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("hub/blobs/sha256").path).isEmpty)
    }

    @Test("the schema validator used above does catch violations")
    func validatorCatchesViolations() throws {
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/model-card.schema.json"))
        let problems = validator.violations(of: ["repository": "no-slash", "revision": "xyz", "extra": true, "bytes": -1])
        #expect(problems.contains { $0.contains("missing required 'files'") })
        #expect(problems.contains { $0.contains("$.repository") })
        #expect(problems.contains { $0.contains("$.revision") })
        #expect(problems.contains { $0.contains("unexpected property 'extra'") })
        #expect(problems.contains { $0.contains("$.bytes") })
    }
}
