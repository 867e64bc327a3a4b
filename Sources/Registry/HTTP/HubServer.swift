import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The daemon's HTTP front: the Hugging Face Hub read protocol over a registry, so that
/// unmodified clients (`HF_ENDPOINT=http://host:port`) download from it. Handlers only
/// translate between HTTP and `ModelReadService`.
public enum HubServer {
    public static func application(registry: HubRegistry, host: String = "127.0.0.1", port: Int = 8080,
                                   onStart: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let service = ModelReadService(registry: registry)
        let router = Router()
        let files = FileIO()

        router.get("/api/models/:namespace/:name") { _, context in
            try json(service.info(repository: repository(context), revision: "main"))
        }
        router.get("/api/models/:namespace/:name/revision/:revision") { _, context in
            try json(service.info(repository: repository(context), revision: context.parameters.require("revision")))
        }
        router.get("/api/models/:namespace/:name/tree/:revision/**") { request, context in
            try tree(request, context, service: service)
        }
        router.get("/api/models/:namespace/:name/tree/:revision") { request, context in
            try tree(request, context, service: service)
        }
        router.head("/:namespace/:name/resolve/:revision/**") { request, context in
            let resolved = try resolve(context, service: service)
            var headers = fileHeaders(resolved)
            headers[.contentLength] = String(resolved.file.size)
            return Response(status: .ok, headers: headers, body: .init())
        }
        router.get("/:namespace/:name/resolve/:revision/**") { request, context in
            let resolved = try resolve(context, service: service)
            var headers = fileHeaders(resolved)
            let size = resolved.file.size
            if let range = request.headers[.range].flatMap({ byteRange($0, size: size) }) {
                headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
                headers[.contentLength] = String(range.count)
                let body = try await files.loadFile(path: resolved.url.path, range: range, context: context)
                return Response(status: .partialContent, headers: headers, body: body)
            }
            headers[.contentLength] = String(size)
            return Response(status: .ok, headers: headers, body: try await files.loadFile(path: resolved.url.path, context: context))
        }

        let application = Application(router: router, configuration: .init(address: .hostname(host, port: port)),
                                      onServerRunning: { channel in await onStart(channel.localAddress?.port ?? port) })
        return application
    }

    static func repository(_ context: some RequestContext) throws -> String {
        "\(try context.parameters.require("namespace"))/\(try context.parameters.require("name"))"
    }

    static func tree(_ request: Request, _ context: some RequestContext, service: ModelReadService) throws -> Response {
        let path = context.parameters.getCatchAll().joined(separator: "/")
        let recursive = request.uri.queryParameters.get("recursive").map { $0 == "true" || $0 == "1" || $0 == "True" } ?? false
        return try json(service.tree(repository: repository(context), revision: context.parameters.require("revision"), path: path,
                                     recursive: recursive))
    }

    static func resolve(_ context: some RequestContext, service: ModelReadService) throws -> ModelReadService.ResolvedFile {
        try service.resolve(repository: repository(context), revision: context.parameters.require("revision"),
                            path: context.parameters.getCatchAll().joined(separator: "/"))
    }

    static func fileHeaders(_ resolved: ModelReadService.ResolvedFile) -> HTTPFields {
        var headers = HTTPFields()
        headers[.eTag] = "\"\(resolved.file.sha256.hex)\""
        headers[HTTPField.Name("X-Repo-Commit")!] = resolved.revision
        headers[HTTPField.Name("X-Linked-Etag")!] = "\"\(resolved.file.sha256.hex)\""
        headers[HTTPField.Name("X-Linked-Size")!] = String(resolved.file.size)
        headers[.acceptRanges] = "bytes"
        headers[.contentType] = "application/octet-stream"
        return headers
    }

    /// `bytes=a-b`, `bytes=a-` or `bytes=-n` within a file of `size` bytes.
    static func byteRange(_ header: String, size: Int) -> ClosedRange<Int>? {
        guard header.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = header.dropFirst(6).split(separator: ",").first.map(String.init) ?? ""
        let parts = spec.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2 else { return nil }
        switch (parts[0], parts[1]) {
        case (let start?, let end?) where start <= end && start < size: return start ... min(end, size - 1)
        case (let start?, nil) where start < size: return start ... size - 1
        case (nil, let suffix?) where suffix > 0: return max(0, size - suffix) ... size - 1
        default: return nil
        }
    }

    static func json(_ object: Any) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension ModelReadService.Failure: HTTPResponseError {
    public var status: HTTPResponse.Status { .notFound }

    /// The status and `X-Error-Code` huggingface_hub maps to its exceptions.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let (code, message) = switch self {
        case .repositoryNotFound(let name): ("RepoNotFound", "Repository \(name) not found")
        case .revisionNotFound(let revision): ("RevisionNotFound", "Invalid rev id: \(revision)")
        case .entryNotFound(let path): ("EntryNotFound", "Entry not found: \(path)")
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[HTTPField.Name("X-Error-Code")!] = code
        headers[HTTPField.Name("X-Error-Message")!] = message
        let body = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data()
        return Response(status: .notFound, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
