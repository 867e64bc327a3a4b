import Foundation

/// Writes that either land whole or not at all: content goes to a temporary file beside the
/// destination, is flushed to disk, and is renamed over the destination in one step.
public enum AtomicFile {
    /// A temporary path in the same directory as `destination` (same file system, so `rename` is atomic).
    public static func temporaryURL(besides destination: URL) -> URL {
        let name = ".\(destination.lastPathComponent).tmp-\(getpid())-\(UUID().uuidString.prefix(8))"
        return destination.deletingLastPathComponent().appendingPathComponent(name)
    }

    public static func write(_ data: Data, to destination: URL) throws {
        try write(to: destination) { handle in try handle.write(contentsOf: data) }
    }

    /// Calls `body` with a handle to a fresh temporary file, then syncs and renames it into
    /// place. If `body` throws, the temporary file is removed and the destination is untouched.
    public static func write(to destination: URL, _ body: (FileHandle) throws -> Void) throws {
        let temporary = temporaryURL(besides: destination)
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw AtomicWriteError.cannotCreate(temporary.path)
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            do {
                try body(handle)
                try handle.synchronize()
                try handle.close()
            } catch {
                try? handle.close()
                throw error
            }
            try commit(temporary, to: destination)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// Renames a finished temporary file (or directory) over `destination`.
    public static func commit(_ temporary: URL, to destination: URL) throws {
        if rename(temporary.path, destination.path) != 0 {
            throw AtomicWriteError.cannotRename(from: temporary.path, to: destination.path, errno: errno)
        }
    }
}

public enum AtomicWriteError: Error, CustomStringConvertible {
    case cannotCreate(String)
    case cannotRename(from: String, to: String, errno: Int32)
    case destinationExists(String)

    public var description: String {
        switch self {
        case .cannotCreate(let path): "cannot create temporary file \(path)"
        case .cannotRename(let from, let to, let code):
            "cannot move \(from) to \(to): \(String(cString: strerror(code)))"
        case .destinationExists(let path): "\(path) already exists; refusing to overwrite it"
        }
    }
}
