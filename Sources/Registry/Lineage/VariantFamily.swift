import Foundation
import HubCore

/// One model of a base's family: the base itself or a variant made from it at any depth,
/// with the records of every edge on the way and every evaluation stored for it. It is what
/// `GET /api/models/{repo}/variants` answers and what pull-by-budget chooses from.
public struct FamilyMember: Sendable, Codable, Equatable {
    public let repository: String
    public let revision: String
    public let kind: VariantRecord.Kind
    public let parameters: Int
    public let bytes: Int
    /// The base the family descends from, as namespace/name@revision.
    public let base: String
    /// The lineage records from the base to this member, base side first: compression
    /// recipes and fine-tune records. Empty for the base.
    public let edges: [JSONValue]
    /// Every metrics record stored for the revision (schemas/metrics.schema.json), oldest first.
    public let metrics: [JSONValue]
    /// True when the repository's main branch has moved past this revision (a build run
    /// again commits its variant anew); absent otherwise, and in families saved before the
    /// field existed. A superseded revision stays in the family, since lineage and audits
    /// need it, but is not offered by pull-by-budget nor fitted by the laws.
    public let superseded: Bool?

    public init(repository: String, revision: String, kind: VariantRecord.Kind, parameters: Int, bytes: Int, base: String,
                edges: [JSONValue], metrics: [JSONValue], superseded: Bool = false) {
        self.repository = repository
        self.revision = revision
        self.kind = kind
        self.parameters = parameters
        self.bytes = bytes
        self.base = base
        self.edges = edges
        self.metrics = metrics
        self.superseded = superseded ? true : nil
    }

    /// Whether this is the revision its repository's main branch points at.
    public var isCurrent: Bool { superseded != true }
}

/// One step of a variant's lineage: a revision with its files, and the record of the edge
/// that made it from the next node (nil at the root).
public struct LineageNode: Sendable, Codable, Equatable {
    public let repository: String
    public let revision: String
    public let kind: VariantRecord.Kind
    public let parameters: Int
    public let files: [RevisionFile]
    /// Where a base came from (an import or a mirror), if recorded.
    public let source: JSONValue?
    /// The compression recipe or fine-tune record of the edge to the parent; nil at the root.
    public let record: JSONValue?

    public init(repository: String, revision: String, kind: VariantRecord.Kind, parameters: Int, files: [RevisionFile],
                source: JSONValue?, record: JSONValue?) {
        self.repository = repository
        self.revision = revision
        self.kind = kind
        self.parameters = parameters
        self.files = files
        self.source = source
        self.record = record
    }

    public var reference: String { "\(repository)@\(revision)" }
}

extension HubRegistry {
    /// The base at `revision` of `repository` and every variant descending from it, breadth
    /// first. Members in private repositories (and what descends from them) are left out
    /// unless `includePrivate`.
    public func family(of repository: RepositoryName, revision: String = "main", includePrivate: Bool = true) throws -> [FamilyMember] {
        guard let root = try store.resolve(repository, revision: revision) else {
            throw RegistryError.revisionNotFound(repository: repository, revision: revision)
        }
        guard try store.variant(of: root.id) != nil else { throw RegistryError.notAModel(repository, revision: root.id) }
        let base = "\(repository)@\(root.id)"
        var members: [FamilyMember] = [], seen = Set<String>()
        var queue: [(Revision, [JSONValue])] = [(root, [])]
        while !queue.isEmpty {
            let (revision, edges) = queue.removeFirst()
            guard seen.insert(revision.id).inserted, let variant = try store.variant(of: revision.id) else { continue }
            if !includePrivate, try store.repository(revision.repository)?.isPrivate != false { continue }
            // The root is the revision asked for, superseded or not; a variant is superseded
            // when its repository's main points elsewhere.
            let superseded = try revision.id != root.id && store.resolve(revision.repository, revision: "main")?.id != revision.id
            members.append(FamilyMember(
                repository: revision.repository.description, revision: revision.id, kind: variant.kind, parameters: variant.parameters,
                bytes: variant.bytes, base: base, edges: edges,
                metrics: try store.metrics(of: revision.id).map { try JSONValue(json: $0.recordJSON) }, superseded: superseded))
            for edge in try store.children(of: revision.id) {
                guard let child = try store.revision(id: edge.childRevisionID) else { continue }
                queue.append((child, edges + [try JSONValue(json: edge.recipeJSON)]))
            }
        }
        return members
    }

    /// The lineage of a revision, from it back to its root (a base), one node per revision.
    /// With `includePrivate` false the chain stops before a private repository, so that its
    /// name does not leak.
    public func lineage(of repository: RepositoryName, revision: String = "main", includePrivate: Bool = true) throws -> [LineageNode] {
        guard let start = try store.resolve(repository, revision: revision) else {
            throw RegistryError.revisionNotFound(repository: repository, revision: revision)
        }
        var chain: [LineageNode] = [], current: Revision? = start
        while let revision = current, !chain.contains(where: { $0.revision == revision.id }) {
            guard let variant = try store.variant(of: revision.id) else { throw RegistryError.notAModel(revision.repository, revision: revision.id) }
            if !includePrivate, try store.repository(revision.repository)?.isPrivate != false { break }
            let edge = try store.lineage(of: revision.id)
            chain.append(LineageNode(repository: revision.repository.description, revision: revision.id, kind: variant.kind,
                                     parameters: variant.parameters, files: try store.files(of: revision.id),
                                     source: try variant.sourceJSON.map { try JSONValue(json: $0) },
                                     record: try edge.map { try JSONValue(json: $0.recipeJSON) }))
            current = try edge.flatMap { try store.revision(id: $0.parentRevisionID) }
        }
        return chain
    }
}
