import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

/// Runs `body` with a daemon on an ephemeral loopback port (in this process), then stops it.
/// `body` is blocking client code (libcurl, Python subprocesses) and runs on a thread of its
/// own: on the cooperative pool it could occupy every thread the server's handlers need.
func withServer(_ registry: HubRegistry, limits: HubServer.Limits = HubServer.Limits(),
                _ body: @escaping @Sendable (Int) throws -> Void) async throws {
    try HubServer.prepare(registry)
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let application = try HubServer.application(registry: registry, port: 0, limits: limits) { port in continuation.yield(port) }
    let server = Task { try await application.runService() }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else { Issue.record("the server did not start"); return }
    let outcome: Result<Void, any Error> = await withCheckedContinuation { done in
        Thread.detachNewThread { done.resume(returning: Result { try body(port) }) }
    }
    server.cancel()
    _ = await server.result
    try outcome.get()
}

/// Everything that tells whether a registry changed: every table's rows and every file in the
/// blob store.
struct RegistrySnapshot: Equatable {
    let tables: [String: Int]
    let blobFiles: [String]

    init(_ registry: HubRegistry) throws {
        let database = (registry.store as! SQLiteMetadataStore).database
        var tables: [String: Int] = [:]
        for table in ["repositories", "blobs", "revisions", "revision_files", "refs", "variants", "lineage_edges", "metrics", "uploads", "tokens", "users"] {
            tables[table] = try database.query("SELECT count(*) AS n FROM \(table)").first?.int("n")
        }
        self.tables = tables
        let root = registry.dataDirectory.appendingPathComponent("blobs/sha256")
        blobFiles = (FileManager.default.enumerator(atPath: root.path)?.allObjects as? [String] ?? []).filter { $0.count > 3 }.sorted()
    }
}

/// A raw HTTP exchange (URLSession would refuse some of the malformed requests we need).
func rawRequest(_ method: String, port: Int, path: String, headers: [String: String] = [:], body: Data? = nil,
                token: String? = nil) throws -> (status: Int, headers: [String: String], json: [String: Any]?) {
    var lines = headers.map { "\($0.key): \($0.value)" }
    if let token { lines.append("Authorization: Bearer \(token)") }
    let response = try CurlTransfer.perform(method: method, url: "http://127.0.0.1:\(port)\(path)", headers: lines,
                                            body: body.map { .data($0) } ?? .none)
    return (response.status, response.headers, try? JSONSerialization.jsonObject(with: response.body) as? [String: Any])
}

/// A small directory of files to push.
func makeContent(_ directory: TemporaryDirectory, name: String = "content", files: [String: Data]) throws -> URL {
    let root = directory.path(name)
    for (path, data) in files {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }
    return root
}

func randomBytes(_ count: Int, seed: UInt64) -> Data {
    var state = seed
    var bytes = [UInt8](repeating: 0, count: count)
    for i in 0 ..< count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
    }
    return Data(bytes)
}
