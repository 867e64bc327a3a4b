import CCurl
import Foundation

/// One HTTP exchange through libcurl's easy interface: a method, headers, an optional body
/// (bytes in memory or a range of a file, streamed), and a sink that receives the response
/// body as it arrives. Redirects are followed; the connection times out if it stalls.
final class CurlTransfer {
    enum Body {
        case none
        case data(Data)
        /// `length` bytes of the file at `offset`, read as curl asks for them.
        case file(URL, offset: Int, length: Int)
    }

    struct Response {
        let status: Int
        /// Header names in lower case; the last value of a repeated header wins.
        let headers: [String: String]
        /// The body, unless a sink took it.
        let body: Data
    }

    private static let initialized: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    private var headerLines: [String] = []
    private var collected = Data()
    private var sink: ((Int, UnsafeRawBufferPointer) -> Bool)?
    private var curl: UnsafeMutableRawPointer?
    private var input: FileHandle?
    private var remaining = 0
    private var progress: ((Int, Int) -> Void)?
    private var sinkFailed = false

    /// Performs the request. `sink`, when given, receives the status and the body (of any
    /// status) as it arrives instead of it being collected; returning false aborts the transfer.
    static func perform(method: String, url: String, headers: [String] = [], body: Body = .none, timeout: Int = 0,
                        sink: ((_ status: Int, _ bytes: UnsafeRawBufferPointer) -> Bool)? = nil,
                        progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws(HubClientError) -> Response {
        guard initialized, let curl = curl_easy_init() else { throw .transport(url: url, message: "libcurl failed to initialize") }
        defer { curl_easy_cleanup(curl) }
        let transfer = CurlTransfer()
        transfer.sink = sink
        transfer.curl = curl
        transfer.progress = progress
        let context = Unmanaged.passUnretained(transfer).toOpaque()

        var list: UnsafeMutablePointer<curl_slist>?
        for header in headers + ["Expect:"] { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }

        _ = hub_curl_set_string(curl, CURLOPT_URL, url)
        _ = hub_curl_set_list(curl, CURLOPT_HTTPHEADER, list)
        _ = hub_curl_set_long(curl, CURLOPT_FOLLOWLOCATION, 1)
        _ = hub_curl_set_long(curl, CURLOPT_NOSIGNAL, 1)
        _ = hub_curl_set_long(curl, CURLOPT_CONNECTTIMEOUT, 15)
        // A stalled connection (under 1 byte/s for 60 s) is an error to retry, not a hang.
        _ = hub_curl_set_long(curl, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = hub_curl_set_long(curl, CURLOPT_LOW_SPEED_TIME, 60)
        if timeout > 0 { _ = hub_curl_set_long(curl, CURLOPT_TIMEOUT, timeout) }
        _ = hub_curl_set_string(curl, CURLOPT_USERAGENT, "hubctl")
        _ = hub_curl_set_data_callback(curl, CURLOPT_WRITEFUNCTION, { buffer, size, count, context in
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
            let bytes = UnsafeRawBufferPointer(start: buffer, count: size * count)
            if let sink = transfer.sink {
                if !sink(hub_curl_response_code(transfer.curl), bytes) { transfer.sinkFailed = true; return 0 }
            } else {
                transfer.collected.append(contentsOf: bytes)
            }
            return size * count
        })
        _ = hub_curl_set_pointer(curl, CURLOPT_WRITEDATA, context)
        _ = hub_curl_set_data_callback(curl, CURLOPT_HEADERFUNCTION, { buffer, size, count, context in
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: buffer, count: size * count), as: UTF8.self)
            // Each response (redirects included) starts with a status line: keep only the last one's headers.
            if line.hasPrefix("HTTP/") { transfer.headerLines.removeAll() } else { transfer.headerLines.append(line) }
            return size * count
        })
        _ = hub_curl_set_pointer(curl, CURLOPT_HEADERDATA, context)
        if progress != nil {
            _ = hub_curl_set_long(curl, CURLOPT_NOPROGRESS, 0)
            _ = hub_curl_set_progress_callback(curl) { context, downloadTotal, downloaded, uploadTotal, uploaded in
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
                if uploadTotal > 0 { transfer.progress?(Int(uploaded), Int(uploadTotal)) } else { transfer.progress?(Int(downloaded), Int(downloadTotal)) }
                return 0
            }
            _ = hub_curl_set_pointer(curl, CURLOPT_XFERINFODATA, context)
        }

        switch method {
        case "GET": break
        case "HEAD": _ = hub_curl_set_long(curl, CURLOPT_NOBODY, 1)
        default: _ = hub_curl_set_string(curl, CURLOPT_CUSTOMREQUEST, method)
        }
        var payload = Data()
        switch body {
        case .none:
            if method == "POST" || method == "PATCH" || method == "PUT" { _ = hub_curl_set_long(curl, CURLOPT_POSTFIELDSIZE, 0); _ = hub_curl_set_long(curl, CURLOPT_POST, 1) }
        case .data(let data):
            payload = data
            _ = hub_curl_set_long(curl, CURLOPT_POST, 1)
            _ = hub_curl_set_offset(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(data.count))
        case .file(let fileURL, let offset, let length):
            guard let handle = FileHandle(forReadingAtPath: fileURL.path) else {
                throw .transport(url: url, message: "cannot read \(fileURL.path)")
            }
            do { try handle.seek(toOffset: UInt64(offset)) } catch { throw .transport(url: url, message: "cannot seek in \(fileURL.path)") }
            transfer.input = handle
            transfer.remaining = length
            _ = hub_curl_set_long(curl, CURLOPT_UPLOAD, 1)
            _ = hub_curl_set_offset(curl, CURLOPT_INFILESIZE_LARGE, curl_off_t(length))
            _ = hub_curl_set_data_callback(curl, CURLOPT_READFUNCTION, { buffer, size, count, context in
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
                let wanted = min(size * count, transfer.remaining)
                guard wanted > 0, let chunk = try? transfer.input?.read(upToCount: wanted), !chunk.isEmpty else { return 0 }
                chunk.copyBytes(to: UnsafeMutableRawPointer(buffer!).assumingMemoryBound(to: UInt8.self), count: chunk.count)
                transfer.remaining -= chunk.count
                return chunk.count
            })
            _ = hub_curl_set_pointer(curl, CURLOPT_READDATA, context)
        }
        defer { try? transfer.input?.close() }

        let code = payload.withUnsafeBytes { bytes -> CURLcode in
            if !payload.isEmpty { _ = hub_curl_set_pointer(curl, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress!)) }
            return curl_easy_perform(curl)
        }
        if transfer.sinkFailed { throw .sinkFailed(url: url) }
        guard code == CURLE_OK else { throw .transport(url: url, message: String(cString: curl_easy_strerror(code))) }
        var parsed: [String: String] = [:]
        for line in transfer.headerLines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            parsed[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return Response(status: hub_curl_response_code(curl), headers: parsed, body: transfer.collected)
    }
}
