import Foundation
import HubCore
import HTTPTypes
import Hummingbird
import NIOCore

/// The Hugging Face Hub read protocol: model info, revision info, trees (paged with `Link`
/// headers, as the Hub does), `resolve` with HEAD, ETag, X-Repo-Commit and byte ranges; plus
/// the model card (lineage and metrics) and a model listing.
struct ReadRoutes: Sendable {
    let service: ModelReadService
    let auth: Authenticator
    let limits: HubServer.Limits

    func add(to router: Router<BasicRequestContext>) {
        let files = FileIO()
        router.get("/api/models") { request, _ in
            let query = request.uri.queryParameters
            let limit = min(max(Int(query.get("limit") ?? "") ?? limits.page, 1), limits.page)
            let page = try service.list(search: query.get("search"), after: query.get("cursor"), limit: limit,
                                        reader: auth.token(for: request))
            return try HubServer.json(page.models, headers: nextLink(request, cursor: page.next))
        }
        router.get("/api/models/:namespace/:name") { request, context in
            try HubServer.json(service.info(repository: HubServer.repository(context), revision: "main", reader: auth.token(for: request)))
        }
        router.get("/api/models/:namespace/:name/revision/:revision") { request, context in
            try HubServer.json(service.info(repository: HubServer.repository(context), revision: context.parameters.require("revision"),
                                            reader: auth.token(for: request)))
        }
        router.get("/api/models/:namespace/:name/card") { request, context in
            try HubServer.json(encoding: service.card(repository: HubServer.repository(context), revision: "main", reader: auth.token(for: request)))
        }
        router.get("/api/models/:namespace/:name/card/:revision") { request, context in
            try HubServer.json(encoding: service.card(repository: HubServer.repository(context), revision: context.parameters.require("revision"),
                                                      reader: auth.token(for: request)))
        }
        // Pull-by-budget and lineage audits read these: a base's whole family with every
        // metrics record, and a variant's chain back to its base with every edge's record.
        router.get("/api/models/:namespace/:name/variants") { request, context in
            try HubServer.json(encoding: service.family(repository: HubServer.repository(context), revision: "main", reader: auth.token(for: request)))
        }
        router.get("/api/models/:namespace/:name/variants/:revision") { request, context in
            try HubServer.json(encoding: service.family(repository: HubServer.repository(context), revision: context.parameters.require("revision"),
                                                        reader: auth.token(for: request)))
        }
        router.get("/api/models/:namespace/:name/lineage") { request, context in
            try HubServer.json(encoding: service.lineage(repository: HubServer.repository(context), revision: "main", reader: auth.token(for: request)))
        }
        router.get("/api/models/:namespace/:name/lineage/:revision") { request, context in
            try HubServer.json(encoding: service.lineage(repository: HubServer.repository(context), revision: context.parameters.require("revision"),
                                                         reader: auth.token(for: request)))
        }
        // The compression laws last fitted for a base (hubctl laws fit), which pull predicts from.
        router.get("/api/models/:namespace/:name/laws") { request, context in
            let repository = try HubServer.repository(context)
            let card = try service.card(repository: repository, revision: "main", reader: auth.token(for: request))
            guard let laws = try service.registry.laws(base: RepositoryName(repository), revision: card.revision) else {
                throw APIError(.notFound, code: "LawsNotFound", "no compression laws fitted for \(repository) yet (hubctl laws fit \(repository))")
            }
            return try HubServer.json(encoding: laws)
        }
        router.get("/api/models/:namespace/:name/tree/:revision/**") { request, context in try tree(request, context) }
        router.get("/api/models/:namespace/:name/tree/:revision") { request, context in try tree(request, context) }
        router.head("/:namespace/:name/resolve/:revision/**") { request, context in
            let resolved = try resolve(request, context)
            var headers = fileHeaders(resolved)
            headers[.contentLength] = String(resolved.file.size)
            return Response(status: .ok, headers: headers, body: .init())
        }
        router.get("/:namespace/:name/resolve/:revision/**") { request, context in
            let resolved = try resolve(request, context)
            var headers = fileHeaders(resolved)
            let size = resolved.file.size
            if let header = request.headers[.range] {
                guard let range = HubServer.byteRange(header, size: size) else {
                    var error = APIError(.rangeNotSatisfiable, code: "RangeNotSatisfiable", "range '\(header)' is outside the file's \(size) bytes")
                    error.headers[.contentRange] = "bytes */\(size)"
                    throw error
                }
                headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
                headers[.contentLength] = String(range.count)
                let body = try await files.loadFile(path: resolved.url.path, range: range, context: context, chunkLength: HubServer.fileChunk)
                return Response(status: .partialContent, headers: headers, body: body)
            }
            headers[.contentLength] = String(size)
            return Response(status: .ok, headers: headers, body: try await files.loadFile(path: resolved.url.path, context: context, chunkLength: HubServer.fileChunk))
        }
    }

    /// A tree page: at most `limits.page` entries from `cursor` (an entry index), with a
    /// `Link: <…>; rel="next"` header while more remain.
    func tree(_ request: Request, _ context: some RequestContext) throws -> Response {
        let path = context.parameters.getCatchAll().joined(separator: "/")
        let query = request.uri.queryParameters
        let recursive = query.get("recursive").map { ["true", "1", "True"].contains($0) } ?? false
        let entries = try service.tree(repository: HubServer.repository(context), revision: context.parameters.require("revision"),
                                       path: path, recursive: recursive, reader: auth.token(for: request))
        let start = min(max(Int(query.get("cursor") ?? "") ?? 0, 0), entries.count)
        let limit = min(max(Int(query.get("limit") ?? "") ?? limits.page, 1), limits.page)
        let end = min(start + limit, entries.count)
        return try HubServer.json(Array(entries[start ..< end]), headers: nextLink(request, cursor: end < entries.count ? String(end) : nil))
    }

    func nextLink(_ request: Request, cursor: String?) -> HTTPFields {
        guard let cursor else { return [:] }
        // Query values arrive decoded; they go back into the URL encoded again.
        let unreserved = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        func encoded(_ text: some StringProtocol) -> String { String(text).addingPercentEncoding(withAllowedCharacters: unreserved) ?? String(text) }
        var items = request.uri.queryParameters.filter { $0.key != "cursor" }.map { "\(encoded($0.key))=\(encoded($0.value))" }
        items.append("cursor=\(encoded(cursor))")
        let host = request.head.authority ?? "localhost"
        var headers = HTTPFields()
        headers[HTTPField.Name("Link")!] = "<http://\(host)\(request.uri.path)?\(items.joined(separator: "&"))>; rel=\"next\""
        return headers
    }

    func resolve(_ request: Request, _ context: some RequestContext) throws -> ModelReadService.ResolvedFile {
        try service.resolve(repository: HubServer.repository(context), revision: context.parameters.require("revision"),
                            path: context.parameters.getCatchAll().joined(separator: "/"), reader: auth.token(for: request))
    }

    func fileHeaders(_ resolved: ModelReadService.ResolvedFile) -> HTTPFields {
        var headers = HTTPFields()
        headers[.eTag] = "\"\(resolved.file.sha256.hex)\""
        headers[HTTPField.Name("X-Repo-Commit")!] = resolved.revision
        headers[HTTPField.Name("X-Linked-Etag")!] = "\"\(resolved.file.sha256.hex)\""
        headers[HTTPField.Name("X-Linked-Size")!] = String(resolved.file.size)
        headers[.acceptRanges] = "bytes"
        headers[.contentType] = "application/octet-stream"
        return headers
    }
}

extension HubServer {
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
}
