import Builds
import Evaluator
import Foundation
import HubCore

extension HubRegistry {
    /// Commits a finished build as a variant of its base, with the compression recipe on its
    /// lineage edge and its metrics record beside it. Registering the same build again changes
    /// nothing: the commit finds the branch already holding these files, and an identical
    /// metrics record is not stored twice.
    public func registerBuild(_ output: BuildOutput, author: String) throws -> Revision {
        let parts = output.recipe.base.split(separator: "@", maxSplits: 1).map(String.init)
        let name = try RepositoryName(output.recipe.name)
        var parent = try RepositoryName(parts[0]), parentRevision = parts.count > 1 ? parts[1] : "main"
        if let compressed = output.compressed {
            // The compressed variant first, as the fine-tuned one's lineage parent.
            let compressedName = try RepositoryName(output.recipe.compressedName)
            let revision = try registerVariant(directory: compressed, as: compressedName, parent: parent, parentRevision: parentRevision,
                                               author: author)
            (parent, parentRevision) = (compressedName, revision.id)
        }
        let revision = try registerVariant(directory: output.variant, as: name, parent: parent, parentRevision: parentRevision, author: author)
        let json = try Self.storedJSON(output.metrics)
        if try !store.metrics(of: revision.id).contains(where: { $0.recordJSON == json }) {
            _ = try recordMetrics(output.metrics, for: name, revision: revision.id)
        }
        return revision
    }
}
