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
        let parameters = ParameterCount(tensors: try QuantizedTensors.logicalShapes(of: weights))
        return VariantRecord(kind: kind, architecture: config.modelType, parameters: parameters.total,
                             embeddingParameters: parameters.embedding, bytes: files.reduce(0) { $0 + $1.size },
                             configJSON: String(decoding: try config.jsonData(), as: UTF8.self), sourceJSON: sourceJSON)
    }

    /// Checks a lineage record (a compression recipe or a fine-tune record) against the parent
    /// it claims: the parent must be a registered variant whose `model.safetensors` has the
    /// sha256 the record names.
    static func lineage(_ record: LineageRecord, parent: RepositoryName, parentRevision: String,
                        store: any MetadataStore) throws -> Revision {
        guard let parentRev = try store.resolve(parent, revision: parentRevision) else {
            throw RegistryError.revisionNotFound(repository: parent, revision: parentRevision)
        }
        guard try store.variant(of: parentRev.id) != nil,
              let parentWeights = try store.files(of: parentRev.id).first(where: { $0.path == "model.safetensors" }) else {
            throw RegistryError.notAModel(parent, revision: parentRev.id)
        }
        guard record.inputSHA256 == parentWeights.sha256 else {
            throw RegistryError.lineageMismatch(parent: "\(parent)@\(parentRev.id)", expected: parentWeights.sha256.hex,
                                                found: record.inputSHA256.hex)
        }
        return parentRev
    }
}

/// What a lineage edge carries: the compression recipe (`recipe.json`), the fine-tune record
/// (`finetune.json`) or the quantization record (`quantization.json`) that made a variant from
/// its parent. Each names the parent's exact weights by sha256, which is what makes the edge
/// checkable.
struct LineageRecord: Sendable {
    /// The files a variant's directory may hold its record in, in the order they are looked for.
    static let fileNames = ["recipe.json", "finetune.json", "quantization.json"]

    let fileName: String
    let data: Data
    /// The sha256 of the weights it was made from.
    let inputSHA256: SHA256Digest
    /// One line for a revision message: what was done.
    let summary: String

    init(fileName: String, data: Data, location: String) throws {
        self.fileName = fileName
        self.data = data
        if fileName == "quantization.json" {
            let record: QuantizationRecord
            do { record = try JSONDecoder().decode(QuantizationRecord.self, from: data) } catch {
                throw RegistryError.invalidVariant(path: location, reason: "not a quantization record (schemas/quantization.schema.json): \(error)")
            }
            inputSHA256 = record.parentCheckpointSHA256
            summary = "\(record.type) quantization, \(record.quantizedTensors) matrices"
        } else if fileName == "finetune.json" {
            guard let record = try? JSONValue(json: String(decoding: data, as: UTF8.self)),
                  let parent = record["parent_checkpoint_sha256"]?.stringValue, let digest = try? SHA256Digest(hex: parent) else {
                throw RegistryError.invalidVariant(path: location, reason: "not a fine-tune record (schemas/finetune.schema.json)")
            }
            inputSHA256 = digest
            var tokens = 0
            if case .number(let count)? = record["tokens"] { tokens = Int(count) }
            summary = "\(record["method"]?.stringValue ?? "?") fine-tune, \(record["loss"]?.stringValue ?? "?"), \(tokens) tokens"
        } else {
            let recipe: CompressionRecipe
            do { recipe = try JSONDecoder().decode(CompressionRecipe.self, from: data) } catch {
                throw RegistryError.invalidVariant(path: location, reason: "not a compression recipe (\(error))")
            }
            inputSHA256 = recipe.baseCheckpointSHA256
            summary = String(format: "%@ at r = %.4f", recipe.method, recipe.achievedRatio)
        }
    }

    /// The record among a variant's files, or nil when it has none.
    static func find(_ url: (String) throws -> URL?) throws -> LineageRecord? {
        for name in fileNames {
            if let location = try url(name), let data = FileManager.default.contents(atPath: location.path) {
                return try LineageRecord(fileName: name, data: data, location: location.path)
            }
        }
        return nil
    }

    var json: String { String(decoding: data, as: UTF8.self) }

    func message(parent: RepositoryName, parentRevision: String) -> String {
        "\(summary) of \(parent)@\(parentRevision.prefix(10))"
    }
}
