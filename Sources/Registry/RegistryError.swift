import HubCore

public enum RegistryError: Error, Equatable, CustomStringConvertible {
    case newerSchema(database: String, migration: String)
    case repositoryNotFound(RepositoryName)
    case revisionNotFound(repository: RepositoryName, revision: String)
    case blobMissing(SHA256Digest)
    case invalidPath(String, reason: String)
    case emptyRevision(RepositoryName)
    case notAModel(RepositoryName, revision: String)
    case dataDirectory(path: String, reason: String)
    case variantNotFound(revision: String)
    case lineageMismatch(parent: String, expected: String, found: String)
    case invalidVariant(path: String, reason: String)
    case invalidRef(String, reason: String)
    case refExists(repository: RepositoryName, ref: String, kind: String, revision: String)
    case staleParent(repository: RepositoryName, branch: String, expected: String, found: String?)
    case buildNotFound(String)
    case queueFull(limit: Int)
    case buildState(id: String, state: String, action: String)

    public var description: String {
        switch self {
        case .newerSchema(let database, let migration):
            "\(database) was migrated by a newer hubctl (unknown migration '\(migration)'); upgrade hubctl"
        case .repositoryNotFound(let name): "repository '\(name)' does not exist (hubctl list shows what this registry holds)"
        case .revisionNotFound(let name, let revision):
            "repository '\(name)' has no revision or ref '\(revision)' (hubctl card \(name) shows its main revision)"
        case .blobMissing(let digest): "blob \(digest) is not in the blob store"
        case .invalidPath(let path, let reason): "invalid file path '\(path)': \(reason)"
        case .emptyRevision(let name): "a revision of '\(name)' needs at least one file"
        case .notAModel(let name, let revision):
            "revision \(revision) of '\(name)' is not registered as a model variant (a model needs config.json and model.safetensors)"
        case .dataDirectory(let path, let reason): "data directory \(path): \(reason)"
        case .variantNotFound(let revision): "revision \(revision) is not a registered model variant"
        case .lineageMismatch(let parent, let expected, let found):
            "the recipe says the variant was made from a checkpoint with sha256 \(found), but \(parent)'s model.safetensors has \(expected)"
        case .invalidVariant(let path, let reason): "\(path): \(reason)"
        case .invalidRef(let name, let reason): "invalid branch or tag name '\(name)': \(reason)"
        case .refExists(let repository, let ref, let kind, let revision):
            "\(repository) already has a \(kind) '\(ref)' (at \(revision)); tags never move"
        case .staleParent(let repository, let branch, let expected, let found):
            "\(repository)@\(branch) is at \(found ?? "nothing"), not at the expected parent \(expected); pull and retry"
        case .buildNotFound(let id): "no build '\(id)' (hubctl build list shows the queue)"
        case .queueFull(let limit):
            "the build queue is full (\(limit) builds waiting or running); wait for one to finish or cancel one (hubctl build cancel)"
        case .buildState(let id, let state, let action): "build \(id) is \(state); only \(action)"
        }
    }
}
