import HubCore

/// The registry's system of record for everything but file bytes. SQLite is the embedded
/// default; the protocol is the seam where a PostgreSQL store would plug in.
public protocol MetadataStore: AccessStore, UploadRecordStore, BuildQueue, LawStore {
    func createRepository(_ name: RepositoryName, isPrivate: Bool) throws -> Repository
    func repository(_ name: RepositoryName) throws -> Repository?
    func repositories() throws -> [Repository]
    /// One page of repositories in name order: names containing `search` (if given), after
    /// `cursor` (a `namespace/name`), private ones only when asked.
    func repositories(search: String?, after cursor: String?, limit: Int, includePrivate: Bool) throws -> [Repository]

    /// Writes a revision, its files, its variant and lineage records and moves its branch to
    /// it, all in one transaction. Every file's blob must already be registered. A commit that
    /// changes nothing (the branch head has the same files and lineage) returns the head.
    func commit(_ revision: NewRevision) throws -> Revision
    func registerBlob(_ digest: SHA256Digest, size: Int) throws
    /// Points tag `name` at a revision of the repository. A tag never moves: setting an
    /// existing tag to another revision is refused.
    func createTag(_ name: String, in repository: RepositoryName, revisionID: String) throws
    /// The tags of a repository with the revisions they name.
    func tags(of repository: RepositoryName) throws -> [(name: String, revisionID: String)]

    /// A revision by id or by ref name (branch or tag). A mirrored revision also answers to
    /// the upstream revision it copies, so a pin such as `repo@<upstream sha>` resolves on a
    /// mirror as it does upstream.
    func resolve(_ repository: RepositoryName, revision: String) throws -> Revision?
    /// A revision by its id alone, in whichever repository holds it.
    func revision(id: String) throws -> Revision?
    func files(of revisionID: String) throws -> [RevisionFile]
    func variant(of revisionID: String) throws -> VariantRecord?
    func lineage(of revisionID: String) throws -> LineageEdge?
    /// The edges that start at a revision: the variants made from it, oldest first.
    func children(of revisionID: String) throws -> [LineageEdge]
    /// Stores one evaluation of a variant (`schemas/metrics.schema.json`), with the fields it is
    /// looked up by (suite, machine) beside it.
    func recordMetrics(_ metrics: StoredMetrics) throws
    /// Every evaluation of a variant, oldest first.
    func metrics(of revisionID: String) throws -> [StoredMetrics]
    /// Variants whose source record carries this sha256 (re-imports are recognised by it).
    func variants(withSourceSHA256 digest: SHA256Digest, in repository: RepositoryName) throws -> [Revision]
    /// Variants whose source record has all of these top-level string fields (mirrors are
    /// recognised by endpoint, repository and upstream revision).
    /// `repository` nil searches every repository.
    func variants(withSource fields: [String: String], in repository: RepositoryName?) throws -> [Revision]
}

/// Paths inside a revision are relative, slash-separated and cannot climb out of it.
public enum RevisionPath {
    public static func validate(_ path: String) throws(RegistryError) {
        if path.isEmpty || path.utf8.count > 1024 { throw .invalidPath(path, reason: "must be 1 to 1024 bytes") }
        if path.hasPrefix("/") { throw .invalidPath(path, reason: "must be relative") }
        if path.contains("\\") || path.utf8.contains(0) { throw .invalidPath(path, reason: "must not contain '\\' or NUL") }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty || component == "." || component == ".." {
                throw .invalidPath(path, reason: "must not contain empty, '.' or '..' components")
            }
        }
    }
}
