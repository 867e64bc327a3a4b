import Builds
import Checkpoint
import Foundation
import HTTPTypes
import HubCore
import Hummingbird
import NIOCore

/// Every error the daemon answers with: a status, an `X-Error-Code` (the names huggingface_hub
/// maps to its exceptions where one exists) and a message that names the problem, as JSON
/// `{"error": message}`.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public var headers = HTTPFields()

    public init(_ status: HTTPResponse.Status, code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        headers[HTTPField.Name("X-Error-Code")!] = code
        // Header values cannot carry line breaks; the body has the message verbatim.
        headers[HTTPField.Name("X-Error-Message")!] = String(message.map { $0.isNewline ? " " : $0 }.prefix(512))
        let body = (try? JSONSerialization.data(withJSONObject: ["error": message], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static let unauthorized = APIError(.unauthorized, code: "Unauthorized", "this request needs a token: send 'Authorization: Bearer <token>'")

    /// The answer for an error thrown anywhere below the handlers.
    public static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError: return error
        case let error as ModelReadService.Failure:
            return switch error {
            case .repositoryNotFound(let name): APIError(.notFound, code: "RepoNotFound", "Repository \(name) not found")
            case .revisionNotFound(let revision): APIError(.notFound, code: "RevisionNotFound", "Invalid rev id: \(revision)")
            case .entryNotFound(let path): APIError(.notFound, code: "EntryNotFound", "Entry not found: \(path)")
            }
        case let error as RegistryError: return from(error)
        case let error as BlobUploads.Failure: return from(error)
        case let error as RepositoryNameError: return APIError(.badRequest, code: "InvalidRepoName", error.description)
        case let error as DigestError: return APIError(.badRequest, code: "InvalidDigest", error.description)
        case let error as BuildError: return APIError(.badRequest, code: "InvalidRecipe", error.description)
        case let error as DecodingError: return APIError(.badRequest, code: "InvalidBody", "the JSON body does not match: \(describe(error))")
        case let error as LlamaConfigError: return APIError(.unprocessableContent, code: "InvalidModel", error.description)
        case let error as SafetensorsError: return APIError(.unprocessableContent, code: "InvalidModel", error.description)
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, code: "BodyTooLarge", "the request body is larger than this endpoint accepts")
        case let error as HTTPError:
            return APIError(error.status, code: error.status == .contentTooLarge ? "BodyTooLarge" : "HTTPError",
                            error.body ?? error.status.reasonPhrase)
        default: return APIError(.internalServerError, code: "InternalError", "\(error)")
        }
    }

    static func from(_ error: RegistryError) -> APIError {
        let text = error.description
        return switch error {
        case .repositoryNotFound: APIError(.notFound, code: "RepoNotFound", text)
        case .revisionNotFound: APIError(.notFound, code: "RevisionNotFound", text)
        case .variantNotFound: APIError(.notFound, code: "VariantNotFound", text)
        case .invalidPath, .emptyRevision, .invalidRef: APIError(.badRequest, code: "InvalidRequest", text)
        case .blobMissing: APIError(.unprocessableContent, code: "BlobMissing", text + "; upload it first")
        case .notAModel, .lineageMismatch, .invalidVariant: APIError(.unprocessableContent, code: "InvalidLineage", text)
        case .refExists, .staleParent: APIError(.conflict, code: "Conflict", text)
        case .newerSchema, .dataDirectory: APIError(.internalServerError, code: "InternalError", text)
        case .buildNotFound: APIError(.notFound, code: "BuildNotFound", text)
        case .queueFull: APIError(.tooManyRequests, code: "QueueFull", text)
        case .buildState: APIError(.conflict, code: "Conflict", text)
        }
    }

    static func from(_ error: BlobUploads.Failure) -> APIError {
        let text = error.description
        switch error {
        case .notFound: return APIError(.notFound, code: "UploadNotFound", text)
        case .offsetMismatch(_, let expected, _):
            var answer = APIError(.conflict, code: "OffsetMismatch", text)
            answer.headers[HTTPField.Name("Upload-Offset")!] = String(expected)
            return answer
        case .busy, .sizeConflict: return APIError(.conflict, code: "Conflict", text)
        case .pastEnd: return APIError(.badRequest, code: "PastEnd", text)
        case .chunkTooLarge, .tooLarge: return APIError(.contentTooLarge, code: "BodyTooLarge", text)
        case .digestMismatch: return APIError(.unprocessableContent, code: "DigestMismatch", text)
        }
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context): "missing field '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)"
        @unknown default: "\(error)"
        }
    }
}

/// Turns whatever a handler throws into an `APIError` answer.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do { return try await next(request, context) } catch { throw APIError.from(error) }
    }
}
