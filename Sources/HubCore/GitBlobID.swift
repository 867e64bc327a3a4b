import Crypto
import Foundation

/// Git's object id of a file's content: sha1 of `blob <size>\0` and the bytes. Hugging Face
/// hubs give this (not a sha256) as the id of files small enough to live outside LFS, so it is
/// what a downloaded small file can be checked against.
public enum GitBlobID {
    public static func ofFile(at url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path),
              let size = try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int else {
            throw DigestError.unreadable(url.path)
        }
        defer { try? handle.close() }
        var hasher = Insecure.SHA1()
        hasher.update(data: Data("blob \(size)\0".utf8))
        while true {
            let chunk = try handle.read(upToCount: 4 << 20) ?? Data()
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
