import Builds
import HubCore
import Foundation

/// The build API from the client side: submit a recipe, read the queue, cancel, retry, and
/// follow a build's server-sent events.
extension HubClient {
    /// Submits a recipe (its JSON bytes, sent as they are so the daemon validates what the user
    /// wrote). Not retried: a submission whose answer was lost may have been queued.
    public func submitBuild(_ recipe: Data) throws -> BuildRecord {
        var once = self
        once.attempts = 1
        return try once.decoded(BuildRecord.self, once.request("POST", "/api/builds", headers: ["Content-Type: application/json"], body: .data(recipe)),
                                path: "/api/builds")
    }

    public func build(_ id: String) throws -> BuildRecord { try get(BuildRecord.self, "/api/builds/\(id)") }

    public func builds(states: [BuildState]? = nil, limit: Int = 50) throws -> [BuildRecord] {
        let filter = states.map { "&state=" + $0.map(\.rawValue).joined(separator: ",") } ?? ""
        return try get([BuildRecord].self, "/api/builds?limit=\(limit)\(filter)")
    }

    public func cancelBuild(_ id: String) throws -> BuildRecord {
        try decoded(BuildRecord.self, request("POST", "/api/builds/\(id)/cancel"), path: "/api/builds/\(id)/cancel")
    }

    public func retryBuild(_ id: String) throws -> BuildRecord {
        try decoded(BuildRecord.self, request("POST", "/api/builds/\(id)/retry"), path: "/api/builds/\(id)/retry")
    }

    /// Follows a build's event stream, calling `handle` for each event, until the daemon ends
    /// the stream (after the build's final state) or `handle` returns false. Returns the last
    /// event seen. A dropped connection throws, so a caller can reconnect: the daemon replays
    /// what a late watcher missed.
    @discardableResult
    public func watchBuild(_ id: String, _ handle: (BuildEvent) -> Bool) throws(HubClientError) -> BuildEvent? {
        let target = url("/api/builds/\(id)/events")
        var buffer = Data(), errorBody = Data(), last: BuildEvent?, stopped = false
        var eventName = "", dataLines: [String] = []
        let sink: (Int, UnsafeRawBufferPointer) -> Bool = { status, bytes in
            if status >= 400 { errorBody.append(contentsOf: bytes); return true }
            buffer.append(contentsOf: bytes)
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                if line.isEmpty {
                    // A blank line ends an event.
                    defer { (eventName, dataLines) = ("", []) }
                    guard !dataLines.isEmpty, let event = try? JSONDecoder().decode(BuildEvent.self, from: Data(dataLines.joined(separator: "\n").utf8)) else {
                        continue
                    }
                    last = event
                    if !handle(event) { stopped = true; return false }
                } else if line.hasPrefix("data:") {
                    dataLines.append(String(line.dropFirst(5)).trimmingCharacters(in: .whitespaces))
                } else if line.hasPrefix("event:") {
                    eventName = String(line.dropFirst(6))
                }
            }
            return true
        }
        let response: CurlTransfer.Response
        do {
            response = try withoutActuallyEscaping(sink) { sink throws(HubClientError) in
                try CurlTransfer.perform(method: "GET", url: target, headers: authorization + ["Accept: text/event-stream"], sink: sink)
            }
        } catch .sinkFailed where stopped {
            return last
        }
        _ = eventName
        if response.status >= 400 {
            try Self.check(CurlTransfer.Response(status: response.status, headers: response.headers, body: errorBody), url: target)
        }
        if !stopped, !(last.map { $0.kind == .state && $0.state?.isFinal == true } ?? false) {
            throw .transport(url: target, message: "the event stream ended before the build did")
        }
        return last
    }

    func decoded<T: Decodable>(_ type: T.Type, _ response: CurlTransfer.Response, path: String) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: response.body) } catch {
            throw HubClientError.unexpectedResponse(url: url(path), reason: "not a \(T.self) (\(error))")
        }
    }
}

extension HubClient {
    /// The compression laws last fitted for a base, or nil when none were.
    public func laws(of repository: RepositoryName) throws -> LawSet? {
        do { return try get(LawSet.self, "/api/models/\(repository)/laws") } catch HubClientError.server(_, 404, "LawsNotFound", _) {
            return nil
        }
    }
}
