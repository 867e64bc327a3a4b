import Foundation
import HubCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// The daemon's HTTP front. Reads follow the Hugging Face Hub protocol, so that unmodified
/// clients (`HF_ENDPOINT=http://host:port`) download from it; writes (resumable blob uploads,
/// atomic commits, tags, metrics, tokens) are this registry's own API. Handlers only translate
/// between HTTP and the registry: `ModelReadService` for reads, `HubRegistry` and
/// `BlobUploads` for writes.
public enum HubServer {
    public struct Limits: Sendable {
        /// JSON request bodies (commits, tags, metrics records).
        public var jsonBody = 4 << 20
        /// One upload chunk.
        public var uploadChunk = 256 << 20
        /// All request headers together.
        public var headers = 16 << 10
        /// Entries per page of a tree or model listing.
        public var page = 1000

        public init() {}
    }

    /// Bytes read from a blob per write to the socket. Larger than Hummingbird's 128 KiB
    /// default to cut event-loop hops per byte; memory stays flat because the body is written
    /// with back-pressure (benchmarks/registry.sh samples the daemon's RSS).
    static let fileChunk = 1 << 20

    /// Gets a data directory ready to serve: finishes or clears what a crash interrupted and,
    /// on first start, writes the admin token file. Returns that file when it was created.
    @discardableResult
    public static func prepare(_ registry: HubRegistry) throws -> URL? {
        try BlobUploads(registry: registry).recover()
        (registry.blobs as? DirectoryBlobStore)?.removeTemporaryFiles()
        return try AdminTokenFile.bootstrap(registry)
    }

    public static func application(registry: HubRegistry, host: String = "127.0.0.1", port: Int = 8080, limits: Limits = Limits(),
                                   builds: BuildWorkers? = nil, onStart: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: APIErrorMiddleware())
        let auth = Authenticator(store: registry.store)
        ReadRoutes(service: ModelReadService(registry: registry), auth: auth, limits: limits).add(to: router)
        WriteRoutes(registry: registry, uploads: try BlobUploads(registry: registry, maximumChunk: limits.uploadChunk),
                    auth: auth, limits: limits).add(to: router)
        BuildRoutes(registry: registry, workers: builds, auth: auth, limits: limits).add(to: router)
        PageRoutes(service: ModelReadService(registry: registry), registry: registry, auth: auth).add(to: router)
        let decoder = HTTP1Channel.Configuration.DecoderConfiguration(
            maxHeaderFieldSize: limits.headers, maxHeaderListSize: limits.headers, maxHeaderFieldCount: 100)
        return Application(router: router, server: .http1(configuration: .init(httpDecoderConfiguration: decoder)),
                           configuration: .init(address: .hostname(host, port: port), serverName: "compression-hub/\(HubVersion.current)"),
                           onServerRunning: { channel in await onStart(channel.localAddress?.port ?? port) })
    }

    static func json(_ object: Any, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(encoding value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    static func repository(_ context: some RequestContext) throws -> String {
        "\(try context.parameters.require("namespace"))/\(try context.parameters.require("name"))"
    }
}
