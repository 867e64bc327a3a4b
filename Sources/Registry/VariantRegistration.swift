import Checkpoint
import Compressor
import Evaluator
import Foundation
import HubCore

extension HubRegistry {
    /// Registers a compressed variant (a directory `hubctl compress` wrote) as a new revision
    /// of `repository`, with a lineage edge to the revision it was made from carrying its
    /// recipe. The recipe must name the parent's exact weights (by sha256): lineage that does
    /// not check out is refused, and nothing is written.
    public func registerVariant(directory: URL, as repository: RepositoryName, parent: RepositoryName, parentRevision: String = "main",
                                author: String) throws -> Revision {
        guard let parentRev = try store.resolve(parent, revision: parentRevision) else {
            throw RegistryError.revisionNotFound(repository: parent, revision: parentRevision)
        }
        guard try store.variant(of: parentRev.id) != nil else { throw RegistryError.notAModel(parent, revision: parentRev.id) }
        guard let parentWeights = try store.files(of: parentRev.id).first(where: { $0.path == "model.safetensors" }) else {
            throw RegistryError.notAModel(parent, revision: parentRev.id)
        }
        let recipeURL = directory.appendingPathComponent("recipe.json")
        guard let recipeData = FileManager.default.contents(atPath: recipeURL.path) else {
            throw RegistryError.invalidVariant(path: directory.path, reason: "no recipe.json: not a directory hubctl compress wrote")
        }
        let recipe: CompressionRecipe
        do { recipe = try JSONDecoder().decode(CompressionRecipe.self, from: recipeData) } catch {
            throw RegistryError.invalidVariant(path: recipeURL.path, reason: "not a compression recipe (\(error))")
        }
        guard recipe.baseCheckpointSHA256 == parentWeights.sha256 else {
            throw RegistryError.lineageMismatch(parent: "\(parent)@\(parentRev.id)", expected: parentWeights.sha256.hex,
                                                found: recipe.baseCheckpointSHA256.hex)
        }
        let config = try LlamaConfig.load(from: directory.appendingPathComponent("config.json"))
        let weights = try SafetensorsFile(path: directory.appendingPathComponent("model.safetensors").path)
        let parameters = ParameterCount(tensors: weights.entries.map { ($0.name, $0.shape) })
        let configJSON = String(decoding: try config.jsonData(), as: UTF8.self)
        return try commitDirectory(
            directory, to: repository,
            message: String(format: "%@ of %@ at r = %.4f", recipe.method, "\(parent)@\(parentRev.id.prefix(10))", recipe.achievedRatio),
            author: author, lineage: (parentRev.id, String(decoding: recipeData, as: UTF8.self))) { files in
            VariantRecord(kind: .compressed, architecture: config.modelType, parameters: parameters.total,
                          embeddingParameters: parameters.embedding, bytes: files.reduce(0) { $0 + $1.size },
                          configJSON: configJSON, sourceJSON: nil)
        }
    }

    /// Stores a metrics record for a revision (a ref or id) of a model repository.
    public func recordMetrics(_ record: MetricsRecord, for repository: RepositoryName, revision: String = "main") throws -> String {
        guard let resolved = try store.resolve(repository, revision: revision) else {
            throw RegistryError.revisionNotFound(repository: repository, revision: revision)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try store.recordMetrics(StoredMetrics(revisionID: resolved.id, suite: record.suite, cpuModel: record.hardware.cpuModel,
                                              blasThreads: record.hardware.blasThreads,
                                              recordJSON: String(decoding: try encoder.encode(record), as: UTF8.self),
                                              createdAt: record.createdAt))
        return resolved.id
    }
}
