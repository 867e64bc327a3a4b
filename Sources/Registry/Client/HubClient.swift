import Foundation
import HubCore

public enum HubClientError: Error, Equatable, CustomStringConvertible {
    case transport(url: String, message: String)
    case sinkFailed(url: String)
    /// The server answered with an error status; `code` and `message` are its own words.
    case server(url: String, status: Int, code: String?, message: String)
    case unexpectedResponse(url: String, reason: String)
    case digestMismatch(path: String, expected: String, found: String)
    case sizeMismatch(path: String, expected: Int, found: Int)
    case gaveUp(url: String, attempts: Int, last: String)

    public var description: String {
        switch self {
        case .transport(let url, let message): "\(url): \(message)"
        case .sinkFailed(let url): "\(url): could not write the downloaded bytes"
        case .server(let url, let status, let code, let message):
            "\(url): HTTP \(status)\(code.map { " \($0)" } ?? ""): \(message)"
                + (status == 401 ? " (give a token: hubctl login, --token or $HUB_TOKEN)" : status == 403 ? " (this token's scope does not allow it)" : "")
        case .unexpectedResponse(let url, let reason): "\(url): unexpected response: \(reason)"
        case .digestMismatch(let path, let expected, let found): "\(path): downloaded bytes hash to \(found), expected \(expected)"
        case .sizeMismatch(let path, let expected, let found): "\(path): downloaded \(found) bytes, expected \(expected)"
        case .gaveUp(let url, let attempts, let last):
            "\(url): gave up after \(attempts) attempts; last error: \(last)"
                + (last.lowercased().contains("connect") ? " (is a daemon running there? start one with hubctl serve, or point --endpoint or $HUB_ENDPOINT at yours)" : "")
        }
    }

    /// Worth another try: the network, or a server that is busy or restarting.
    var isTransient: Bool {
        switch self {
        case .transport: true
        case .server(_, let status, _, _): status == 429 || status >= 500
        default: false
        }
    }
}

/// A client of a Hugging Face compatible hub (this registry's daemon, or any other): JSON
/// requests, resumable downloads, and this registry's resumable uploads, over libcurl, with
/// retries and exponential back-off for transient failures.
public struct HubClient: Sendable {
    public let endpoint: String
    public let token: String?
    public var attempts = 6
    /// The first retry's delay; each next one doubles it.
    public var backoff: Double = 0.25

    public init(endpoint: String, token: String?) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.token = token
    }

    var authorization: [String] { token.map { ["Authorization: Bearer \($0)"] } ?? [] }

    func url(_ path: String) -> String { path.hasPrefix("http://") || path.hasPrefix("https://") ? path : endpoint + path }

    /// Runs `body`, retrying transient failures with back-off.
    func retrying<T>(_ url: String, _ body: () throws(HubClientError) -> T) throws(HubClientError) -> T {
        var delay = backoff
        var last: HubClientError?
        for attempt in 1 ... max(attempts, 1) {
            do { return try body() } catch {
                guard error.isTransient else { throw error }
                last = error
                if attempt < attempts {
                    Thread.sleep(forTimeInterval: delay)
                    delay *= 2
                }
            }
        }
        throw .gaveUp(url: url, attempts: attempts, last: last?.description ?? "")
    }

    /// A request whose answer must be a success; error answers become `.server` with the
    /// server's code and message.
    @discardableResult
    func request(_ method: String, _ path: String, json: Any? = nil, headers: [String] = [],
                 body: CurlTransfer.Body = .none) throws(HubClientError) -> CurlTransfer.Response {
        let target = url(path)
        var payload = body
        var extra = headers + authorization
        if let json {
            do { payload = .data(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) } catch {
                throw .unexpectedResponse(url: target, reason: "cannot encode the request: \(error)")
            }
            extra.append("Content-Type: application/json")
        }
        let response = try retrying(target) { () throws(HubClientError) in
            let response = try CurlTransfer.perform(method: method, url: target, headers: extra, body: payload)
            try Self.check(response, url: target)
            return response
        }
        return response
    }

    static func check(_ response: CurlTransfer.Response, url: String) throws(HubClientError) {
        guard response.status >= 400 else { return }
        let message = (try? JSONSerialization.jsonObject(with: response.body) as? [String: Any])?["error"] as? String
            ?? response.headers["x-error-message"] ?? String(decoding: response.body.prefix(300), as: UTF8.self)
        throw .server(url: url, status: response.status, code: response.headers["x-error-code"], message: message)
    }

    func json(_ method: String, _ path: String, body: Any? = nil) throws(HubClientError) -> Any {
        let response = try request(method, path, json: body)
        do { return try JSONSerialization.jsonObject(with: response.body, options: [.fragmentsAllowed]) } catch {
            throw .unexpectedResponse(url: url(path), reason: "not JSON: \(String(decoding: response.body.prefix(200), as: UTF8.self))")
        }
    }

    /// Every page of a listing that pages with `Link: <…>; rel="next"`.
    func pages(_ path: String) throws(HubClientError) -> [[String: Any]] {
        var next: String? = path
        var all: [[String: Any]] = []
        while let page = next {
            let response = try request("GET", page)
            guard let entries = try? JSONSerialization.jsonObject(with: response.body) as? [[String: Any]] else {
                throw .unexpectedResponse(url: url(page), reason: "expected a JSON array")
            }
            all += entries
            next = response.headers["link"].flatMap(Self.nextLink)
        }
        return all
    }

    static func nextLink(_ header: String) -> String? {
        for part in header.split(separator: ",") where part.contains("rel=\"next\"") {
            guard let open = part.firstIndex(of: "<"), let close = part.firstIndex(of: ">") else { continue }
            return String(part[part.index(after: open) ..< close])
        }
        return nil
    }
}
