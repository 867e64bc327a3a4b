import Builds
import Foundation
import HTTPTypes
import HubCore
import Hummingbird
import NIOCore

/// The build API. Reading needs any token; submitting, cancelling and retrying need write
/// scope, and a build can be cancelled or retried by its author or an admin.
///
/// - `POST /api/builds` with a recipe (`schemas/build-recipe.schema.json`): queue it; `201`
///   with the build (`schemas/build.schema.json`). A bad recipe is `400 InvalidRecipe` naming
///   the field; a full queue is `429 QueueFull`.
/// - `GET /api/builds[?state=queued,running&limit=n]`: the newest builds first.
/// - `GET /api/builds/{id}`: one build with its state, error text and registered variants.
/// - `GET /api/builds/{id}/events`: server-sent events (`BuildEvent`) until the build ends,
///   with a comment line every 15 s so that idle connections stay open.
/// - `POST /api/builds/{id}/cancel`, `POST /api/builds/{id}/retry`.
struct BuildRoutes: Sendable {
    let registry: HubRegistry
    let workers: BuildWorkers?
    let auth: Authenticator
    let limits: HubServer.Limits
    /// Seconds between keep-alive comments on an event stream.
    var keepAlive: Double = 15

    func add(to router: Router<BasicRequestContext>) {
        router.post("/api/builds") { request, _ in
            let token = try auth.require(.write, request)
            let workers = try running()
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: limits.jsonBody) } catch is NIOTooManyBytesError {
                throw APIError(.contentTooLarge, code: "BodyTooLarge", "a recipe may be at most \(limits.jsonBody) bytes")
            }
            let recipe = try BuildRecipe.decode(Data(buffer: body), knownMethods: BuildRecipe.knownMethods)
            let record = try await offload { try workers.submit(recipe, author: token.user) }
            return try HubServer.json(encoding: record, status: .created)
        }
        router.get("/api/builds") { request, _ in
            _ = try auth.require(.read, request)
            let query = request.uri.queryParameters
            var states: [BuildState]?
            if let names = query["state"].map(String.init), !names.isEmpty {
                states = try names.split(separator: ",").map {
                    guard let state = BuildState(rawValue: String($0)) else {
                        throw APIError(.badRequest, code: "InvalidRequest",
                                       "state '\($0)' is not one of \(BuildState.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    return state
                }
            }
            let limit = min(max(query["limit"].flatMap { Int(String($0)) } ?? 50, 1), limits.page)
            let wanted = states
            return try HubServer.json(encoding: try await offload { try registry.store.builds(states: wanted, limit: limit) })
        }
        router.get("/api/builds/:id") { request, context in
            _ = try auth.require(.read, request)
            return try HubServer.json(encoding: try await record(context.parameters.require("id")))
        }
        router.get("/api/builds/:id/events") { request, context in
            _ = try auth.require(.read, request)
            let current = try await record(context.parameters.require("id"))
            let hub = workers?.events ?? BuildEventHub()
            let stream = hub.subscribe(current)
            let keepAlive = keepAlive
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                // Events and keep-alive comments through one channel, so that one writer writes.
                let (lines, sink) = AsyncStream<String>.makeStream()
                let forward = Task {
                    for await event in stream {
                        let data = (try? encoder.encode(event)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                        sink.yield("event: \(event.kind.rawValue)\ndata: \(data)\n\n")
                    }
                    sink.finish()
                }
                let beat = Task {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(keepAlive))
                        sink.yield(": keep-alive\n\n")
                    }
                }
                defer { forward.cancel(); beat.cancel() }
                for await line in lines { try await writer.write(ByteBuffer(string: line)) }
                try await writer.finish(nil)
            })
        }
        router.post("/api/builds/:id/cancel") { request, context in
            let token = try auth.require(.write, request)
            let id = try context.parameters.require("id")
            try await owned(id, by: token)
            let workers = try running()
            return try HubServer.json(encoding: try await offload { try workers.cancel(id: id) })
        }
        router.post("/api/builds/:id/retry") { request, context in
            let token = try auth.require(.write, request)
            let id = try context.parameters.require("id")
            try await owned(id, by: token)
            let workers = try running()
            return try HubServer.json(encoding: try await offload { try workers.retry(id: id) })
        }
    }

    func record(_ id: String) async throws -> BuildRecord {
        guard let record = try await offload({ try registry.store.build(id: id) }) else { throw RegistryError.buildNotFound(id) }
        return record
    }

    func owned(_ id: String, by token: AccessToken) async throws {
        let build = try await record(id)
        guard build.author == token.user || token.allows(.admin) else {
            throw APIError(.forbidden, code: "InsufficientScope", "build \(id) belongs to \(build.author); only they or an admin can change it")
        }
    }

    func running() throws -> BuildWorkers {
        guard let workers else {
            throw APIError(.serviceUnavailable, code: "NoBuildWorkers", "this daemon runs no build workers (start it with --build-workers 1)")
        }
        return workers
    }
}
