import Evaluator
import Foundation
import HTTPTypes
import HubCore
import Hummingbird
import NIOCore

/// The write API. Every route needs a bearer token with the scope it names:
///
/// - `POST /api/uploads` `{"sha256", "size"}` (write): start or find an upload; a stored blob
///   is answered `complete` at once.
/// - `HEAD|GET /api/uploads/{id}`: how many bytes arrived (`Upload-Offset`).
/// - `PATCH /api/uploads/{id}` with `Upload-Offset: n` and the next bytes: append a chunk; the
///   last one verifies the sha256 and stores the blob.
/// - `DELETE /api/uploads/{id}`: abort.
/// - `POST /api/models/{repo}/commit/{branch}` (`CommitRequest`): commit uploaded blobs, all or nothing.
/// - `POST /api/models/{repo}/tag/{revision}` `{"tag"}`: a tag that never moves.
/// - `POST /api/models/{repo}/metrics/{revision}`: a metrics record (`schemas/metrics.schema.json`).
/// - `POST /api/tokens` `{"user", "label", "scope"}` (admin): a new token, shown once.
/// - `GET /api/tokens` (admin): every token without its secret; `DELETE /api/tokens/{id}`: revoke.
/// - `GET /api/whoami-v2` (any token): who the token belongs to.
struct WriteRoutes: Sendable {
    let registry: HubRegistry
    let uploads: BlobUploads
    let auth: Authenticator
    let limits: HubServer.Limits

    struct NewUpload: Decodable { let sha256: SHA256Digest; let size: Int }
    struct NewTag: Decodable { let tag: String; let message: String? }
    struct NewToken: Decodable { let user: String?; let label: String?; let scope: TokenScope }

    func add(to router: Router<BasicRequestContext>) {
        router.post("/api/uploads") { request, context in
            let token = try auth.require(.write, request)
            let new = try await decode(NewUpload.self, request)
            let status = try await offload { try uploads.begin(sha256: new.sha256, size: new.size, user: token.user) }
            return try HubServer.json(encoding: status, status: status.complete ? .ok : .created)
        }
        router.head("/api/uploads/:id") { request, context in
            _ = try auth.require(.write, request)
            let status = try uploads.status(id: context.parameters.require("id"))
            return Response(status: .ok, headers: offsetHeaders(status))
        }
        router.get("/api/uploads/:id") { request, context in
            _ = try auth.require(.write, request)
            return try HubServer.json(encoding: uploads.status(id: context.parameters.require("id")))
        }
        router.patch("/api/uploads/:id") { request, context in
            _ = try auth.require(.write, request)
            guard let offset = request.headers[HTTPField.Name("Upload-Offset")!].flatMap({ Int($0) }), offset >= 0 else {
                throw APIError(.badRequest, code: "InvalidRequest", "a chunk needs an 'Upload-Offset: <bytes already sent>' header")
            }
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limits.uploadChunk {
                throw APIError.from(BlobUploads.Failure.chunkTooLarge(limit: limits.uploadChunk))
            }
            let status = try await uploads.append(id: context.parameters.require("id"), offset: offset,
                                                  body: request.body.map { $0.readableBytesView })
            return try HubServer.json(encoding: status)
        }
        router.delete("/api/uploads/:id") { request, context in
            _ = try auth.require(.write, request)
            let id = try context.parameters.require("id")
            try await offload { try uploads.abort(id: id) }
            return Response(status: .noContent)
        }
        router.post("/api/models/:namespace/:name/commit/:branch") { request, context in
            let token = try auth.require(.write, request)
            let name = try RepositoryName(HubServer.repository(context))
            let commit = try await decode(CommitRequest.self, request)
            let branch = try context.parameters.require("branch")
            let revision = try await offload { try registry.commit(commit, to: name, branch: branch, author: token.user) }
            let host = request.head.authority ?? "localhost"
            return try HubServer.json(["commitOid": revision.id, "commitUrl": "http://\(host)/\(name)/commit/\(revision.id)",
                                       "commitMessage": revision.message], status: .created)
        }
        router.post("/api/models/:namespace/:name/tag/:revision") { request, context in
            _ = try auth.require(.write, request)
            let name = try RepositoryName(HubServer.repository(context))
            let tag = try await decode(NewTag.self, request)
            let revision = try context.parameters.require("revision")
            let resolved = try await offload {
                guard let resolved = try registry.store.resolve(name, revision: revision) else {
                    throw RegistryError.revisionNotFound(repository: name, revision: revision)
                }
                try registry.store.createTag(tag.tag, in: name, revisionID: resolved.id)
                return resolved
            }
            return try HubServer.json(["tag": tag.tag, "revision": resolved.id], status: .created)
        }
        router.post("/api/models/:namespace/:name/metrics/:revision") { request, context in
            _ = try auth.require(.write, request)
            let name = try RepositoryName(HubServer.repository(context))
            let record = try await decode(MetricsRecord.self, request)
            let target = try context.parameters.require("revision")
            let revision = try await offload { try registry.recordMetrics(record, for: name, revision: target) }
            return try HubServer.json(["revision": revision, "suite": record.suite], status: .created)
        }
        router.post("/api/tokens") { request, context in
            let admin = try auth.require(.admin, request)
            let new = try await decode(NewToken.self, request)
            let user = new.user ?? admin.user
            guard !user.isEmpty, user.utf8.count <= 64, user.allSatisfy({ $0.isLetter || $0.isNumber || "_.-".contains($0) }) else {
                throw APIError(.badRequest, code: "InvalidRequest", "user '\(user)' must be 1 to 64 letters, digits, '_', '.' or '-'")
            }
            let secret = TokenSecret.generate()
            let label = new.label ?? "created by \(admin.user)"
            let token = try await offload {
                try registry.store.createToken(secretDigest: TokenSecret.digest(secret), user: user, label: label, scope: new.scope)
            }
            return try HubServer.json(["token": secret, "user": token.user, "label": token.label, "scope": token.scope.rawValue],
                                      status: .created)
        }
        router.get("/api/tokens") { request, _ in
            _ = try auth.require(.admin, request)
            return try HubServer.json(encoding: try await offload { try registry.store.tokens() })
        }
        router.delete("/api/tokens/:id") { request, context in
            let admin = try auth.require(.admin, request)
            let id = try context.parameters.require("id", as: Int.self)
            guard id != admin.id else {
                throw APIError(.conflict, code: "Conflict", "a token cannot revoke itself; use another admin token")
            }
            guard try await offload({ try registry.store.revokeToken(id: id) }) else {
                throw APIError(.notFound, code: "TokenNotFound", "no live token with id \(id)")
            }
            return Response(status: .noContent)
        }
        router.get("/api/whoami-v2") { request, _ in
            let token = try auth.require(.read, request)
            return try HubServer.json(["type": "user", "name": token.user,
                                       "auth": ["type": "access_token", "accessToken": ["displayName": token.label, "role": token.scope.rawValue]]])
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: limits.jsonBody) } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "BodyTooLarge", "a JSON body may be at most \(limits.jsonBody) bytes")
        }
        return try JSONDecoder().decode(T.self, from: Data(buffer: body))
    }

    func offsetHeaders(_ status: BlobUploads.Status) -> HTTPFields {
        var headers = HTTPFields()
        headers[HTTPField.Name("Upload-Offset")!] = String(status.offset)
        headers[HTTPField.Name("Upload-Length")!] = String(status.size)
        return headers
    }
}
