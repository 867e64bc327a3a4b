import Builds
import Evaluator
import Foundation
import HubCore

extension HubRegistry {
    /// Commits a finished build as a variant of its base, with the compression recipe (or the
    /// fine-tune or quantization record) on its lineage edge and its metrics record beside it. Registering the same build again changes
    /// nothing: the commit finds the branch already holding these files, and an identical
    /// metrics record is not stored twice.
    public func registerBuild(_ output: BuildOutput, author: String) throws -> Revision {
        let parts = output.recipe.base.split(separator: "@", maxSplits: 1).map(String.init)
        let name = try RepositoryName(output.recipe.name)
        var parent = try RepositoryName(parts[0]), parentRevision = parts.count > 1 ? parts[1] : "main"
        for (intermediate, directory) in output.intermediates {
            // The models made on the way first (compressed, fine-tuned), each the next one's lineage parent.
            let name = try RepositoryName(intermediate)
            let revision = try withFiles(of: directory, provenance: nil) { directory in
                try heldRevision(of: name, holding: directory, parent: parent, parentRevision: parentRevision)
                    ?? registerVariant(directory: directory, as: name, parent: parent, parentRevision: parentRevision, author: author)
            }
            (parent, parentRevision) = (name, revision.id)
        }
        let provenance = BuildProvenance(base: output.recipe.base, stages: output.stages)
        let revision = try withFiles(of: output.variant, provenance: provenance) { directory in
            try registerVariant(directory: directory, as: name, parent: parent, parentRevision: parentRevision, author: author)
        }
        let json = try Self.storedJSON(output.metrics)
        if try !store.metrics(of: revision.id).contains(where: { $0.recordJSON == json }) {
            _ = try recordMetrics(output.metrics, for: name, revision: revision.id)
        }
        return revision
    }

    /// The revision `name`'s main branch points at, when it already holds the model in
    /// `directory` (every file the same, a `build.json` apart) on an edge from the same parent
    /// revision. A fine-tuning cell registers its compressed parent under the name of the
    /// budget-0 cell (NAME-ft49k's parent is NAME); when that cell was built and measured, its
    /// revision is the parent. Committing the files again would make a new, unmeasured revision
    /// of the same weights that supersedes the measured one, and the measurement would leave
    /// the laws and pull-by-budget.
    func heldRevision(of name: RepositoryName, holding directory: URL, parent: RepositoryName, parentRevision: String) throws -> Revision? {
        guard try store.repository(name) != nil, let main = try store.resolve(name, revision: "main"), let parentID = try store.resolve(parent, revision: parentRevision)?.id,
              try store.lineage(of: main.id)?.parentRevisionID == parentID else { return nil }
        var held: [String: RevisionFile] = [:]
        for file in try store.files(of: main.id) where file.path != "build.json" { held[file.path] = file }
        let offered = try DirectoryListing.regularFiles(under: directory).filter { $0.0 != "build.json" }
        guard offered.count == held.count else { return nil }
        for (path, url) in offered {
            guard let file = held[path], let size = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int,
                  size == file.size, try SHA256Digest.ofFile(at: url) == file.sha256 else { return nil }
        }
        return main
    }

    /// Runs `body` on a directory holding a stage's output files (hard links, no copies) but
    /// the stage cache's own `stage.json`, plus, for the variant itself, `build.json`: the
    /// record of every stage that made it (keys, settings, input sha256, code version, wall
    /// time), so the variant carries its whole build with it. The records come from the stage
    /// cache, so building the same variant again writes the same file and registers nothing new.
    func withFiles<T>(of output: URL, provenance: BuildProvenance?, _ body: (URL) throws -> T) throws -> T {
        let staging = scratchDirectory()
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: staging) }
        for (path, url) in try DirectoryListing.regularFiles(under: output) where path != "stage.json" {
            let target = staging.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.linkItem(at: url, to: target)
        }
        if let provenance {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            try encoder.encode(provenance).write(to: staging.appendingPathComponent("build.json"))
        }
        return try body(staging)
    }
}

/// `build.json` in a built variant: the base it was built from and every stage's record.
public struct BuildProvenance: Codable, Sendable, Equatable {
    public let base: String
    public let stages: [StageRecord]
}
