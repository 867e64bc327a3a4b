import Checkpoint
import Compressor
import Evaluator
import Foundation
import HubCore

extension HubRegistry {
    /// Registers a variant (a directory `hubctl compress` or `hubctl finetune` wrote) as a new
    /// revision of `repository`, with a lineage edge to the revision it was made from carrying
    /// its recipe or fine-tune record. The record must name the parent's exact weights (by
    /// sha256): lineage that does not check out is refused, and nothing is written.
    public func registerVariant(directory: URL, as repository: RepositoryName, parent: RepositoryName, parentRevision: String = "main",
                                author: String) throws -> Revision {
        guard let record = try LineageRecord.find({
            let url = directory.appendingPathComponent($0)
            return FileManager.default.fileExists(atPath: url.path) ? url : nil
        }) else {
            throw RegistryError.invalidVariant(path: directory.path,
                                               reason: "no recipe.json or finetune.json: not a directory hubctl compress or hubctl finetune wrote")
        }
        let parentRev = try VariantInspector.lineage(record, parent: parent, parentRevision: parentRevision, store: store)
        return try commitDirectory(
            directory, to: repository, message: record.message(parent: parent, parentRevision: parentRev.id),
            author: author, lineage: (parentRev.id, record.json)) { files in
            guard let record = try VariantInspector.record(kind: .compressed, files: files, sourceJSON: nil, url: {
                let url = directory.appendingPathComponent($0)
                return FileManager.default.fileExists(atPath: url.path) ? url : nil
            }) else {
                throw RegistryError.invalidVariant(path: directory.path, reason: "needs config.json and model.safetensors")
            }
            return record
        }
    }

    /// Stores a metrics record for a revision (a ref or id) of a model repository.
    public func recordMetrics(_ record: MetricsRecord, for repository: RepositoryName, revision: String = "main") throws -> String {
        guard let resolved = try store.resolve(repository, revision: revision) else {
            throw RegistryError.revisionNotFound(repository: repository, revision: revision)
        }
        try store.recordMetrics(StoredMetrics(revisionID: resolved.id, suite: record.suite, cpuModel: record.hardware.cpuModel,
                                              blasThreads: record.hardware.blasThreads, recordJSON: try Self.storedJSON(record),
                                              createdAt: record.createdAt))
        return resolved.id
    }

    /// A metrics record as the store keeps it: compact JSON, keys sorted.
    static func storedJSON(_ record: MetricsRecord) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(record), as: UTF8.self)
    }
}
