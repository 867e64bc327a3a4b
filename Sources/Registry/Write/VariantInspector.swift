import Checkpoint
import Compressor
import Evaluator
import Foundation
import HubCore

/// Reads what a revision holds as a model from its files: `config.json` and
/// `model.safetensors` make it a variant; `recipe.json` with a parent makes it a compressed
/// one, whose lineage must check out against the parent's exact weights.
enum VariantInspector {
    /// The variant record of a set of files, or nil when they are not a model (no config.json
    /// or no model.safetensors). `url(path)` finds a file's bytes.
    static func record(kind: VariantRecord.Kind, files: [RevisionFile], sourceJSON: String?,
                       url: (String) throws -> URL?) throws -> VariantRecord? {
        guard let configURL = try url("config.json"), let weightsURL = try url("model.safetensors") else { return nil }
        let config = try LlamaConfig.load(from: configURL)
        let weights = try SafetensorsFile(path: weightsURL.path)
        let parameters = ParameterCount(tensors: weights.entries.map { ($0.name, $0.shape) })
        return VariantRecord(kind: kind, architecture: config.modelType, parameters: parameters.total,
                             embeddingParameters: parameters.embedding, bytes: files.reduce(0) { $0 + $1.size },
                             configJSON: String(decoding: try config.jsonData(), as: UTF8.self), sourceJSON: sourceJSON)
    }

    /// Checks a recipe against the parent it claims: the parent must be a registered variant
    /// whose `model.safetensors` has the sha256 the recipe names.
    static func lineage(recipeData: Data, recipeLocation: String, parent: RepositoryName, parentRevision: String,
                        store: any MetadataStore) throws -> (parent: Revision, recipe: CompressionRecipe) {
        guard let parentRev = try store.resolve(parent, revision: parentRevision) else {
            throw RegistryError.revisionNotFound(repository: parent, revision: parentRevision)
        }
        guard try store.variant(of: parentRev.id) != nil,
              let parentWeights = try store.files(of: parentRev.id).first(where: { $0.path == "model.safetensors" }) else {
            throw RegistryError.notAModel(parent, revision: parentRev.id)
        }
        let recipe: CompressionRecipe
        do { recipe = try JSONDecoder().decode(CompressionRecipe.self, from: recipeData) } catch {
            throw RegistryError.invalidVariant(path: recipeLocation, reason: "not a compression recipe (\(error))")
        }
        guard recipe.baseCheckpointSHA256 == parentWeights.sha256 else {
            throw RegistryError.lineageMismatch(parent: "\(parent)@\(parentRev.id)", expected: parentWeights.sha256.hex,
                                                found: recipe.baseCheckpointSHA256.hex)
        }
        return (parentRev, recipe)
    }

    static func message(for recipe: CompressionRecipe, parent: RepositoryName, parentRevision: String) -> String {
        String(format: "%@ of %@ at r = %.4f", recipe.method, "\(parent)@\(parentRevision.prefix(10))", recipe.achievedRatio)
    }
}
