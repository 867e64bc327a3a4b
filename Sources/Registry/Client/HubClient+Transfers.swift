import Foundation
import HubCore

extension HubClient {
    /// Downloads `path` into `destination`, resuming after whatever bytes it already holds
    /// (a `Range` request; a server that ignores it gets the file rewritten from the start) and
    /// retrying transient failures. Returns the final response's headers.
    @discardableResult
    public func download(_ path: String, to destination: URL, expectedSize: Int? = nil,
                         progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws(HubClientError) -> [String: String] {
        let target = url(path)
        // Each attempt starts after the bytes the previous ones left in `destination`.
        return try retrying(target) { () throws(HubClientError) in
            let have = Self.fileSize(destination)
            if let expectedSize, have == expectedSize, FileManager.default.fileExists(atPath: destination.path) { return [:] }
            if !FileManager.default.fileExists(atPath: destination.path) {
                FileManager.default.createFile(atPath: destination.path, contents: nil)
            }
            guard let handle = try? FileHandle(forWritingTo: destination) else {
                throw .transport(url: target, message: "cannot write \(destination.path)")
            }
            defer { try? handle.close() }
            var errorBody = Data()
            var started = false
            let response = try CurlTransfer.perform(
                method: "GET", url: target, headers: authorization + (have > 0 ? ["Range: bytes=\(have)-"] : []),
                sink: { status, bytes in
                    if status >= 400 { errorBody.append(contentsOf: bytes.prefix(4096)); return true }
                    do {
                        if !started {
                            started = true
                            // 200 to a range request: the server sent the whole file again.
                            let offset = status == 206 ? have : 0
                            try handle.truncate(atOffset: UInt64(offset))
                            try handle.seek(toOffset: UInt64(offset))
                        }
                        try handle.write(contentsOf: Data(bytes))
                        return true
                    } catch { return false }
                },
                progress: progress.map { report in { done, total in report(have + done, expectedSize ?? (have + total)) } })
            if response.status == 416, let expectedSize, have >= expectedSize { return response.headers }
            try Self.check(CurlTransfer.Response(status: response.status, headers: response.headers, body: errorBody), url: target)
            return response.headers
        }
    }

    /// Uploads one file as a blob through the resumable upload API: announces it, then sends
    /// chunks from wherever the server says it stands, so that an interrupted upload (or one a
    /// crashed daemon had half received) continues instead of starting over. Returns the bytes
    /// actually sent.
    @discardableResult
    public func uploadBlob(_ file: URL, sha256: SHA256Digest, size: Int, chunkSize: Int = 16 << 20,
                           progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws(HubClientError) -> Int {
        var status = try uploadStatus(try request("POST", "/api/uploads", json: ["sha256": sha256.hex, "size": size]).body)
        var sent = 0
        var delay = backoff
        var failures = 0
        while !status.complete {
            guard let id = status.id else { throw .unexpectedResponse(url: url("/api/uploads"), reason: "an incomplete upload without an id") }
            progress?(status.offset, size)
            let length = min(chunkSize, size - status.offset)
            let target = url("/api/uploads/\(id)")
            do {
                let response = try CurlTransfer.perform(
                    method: "PATCH", url: target,
                    headers: authorization + ["Upload-Offset: \(status.offset)", "Content-Type: application/octet-stream"],
                    body: .file(file, offset: status.offset, length: length))
                try Self.check(response, url: target)
                status = try uploadStatus(response.body)
                sent += length
                failures = 0
            } catch {
                let offsetMoved: Bool = if case .server(_, 409, "OffsetMismatch", _) = error { true } else { false }
                guard error.isTransient || offsetMoved else { throw error }
                failures += 1
                if failures >= attempts { throw .gaveUp(url: target, attempts: failures, last: error.description) }
                if !offsetMoved {
                    Thread.sleep(forTimeInterval: delay)
                    delay *= 2
                }
                // Ask where the upload stands; after a daemon restart it may be finished or gone.
                do {
                    status = try uploadStatus(try request("GET", "/api/uploads/\(id)").body)
                } catch {
                    guard case .server(_, 404, _, _) = error else { throw error }
                    status = try uploadStatus(try request("POST", "/api/uploads", json: ["sha256": sha256.hex, "size": size]).body)
                }
            }
        }
        progress?(size, size)
        return sent
    }

    func uploadStatus(_ body: Data) throws(HubClientError) -> BlobUploads.Status {
        do { return try JSONDecoder().decode(BlobUploads.Status.self, from: body) } catch {
            throw .unexpectedResponse(url: url("/api/uploads"), reason: "not an upload status: \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
    }

    static func fileSize(_ url: URL) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
    }
}
