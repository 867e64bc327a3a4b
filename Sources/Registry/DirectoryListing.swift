import Foundation

/// The files a directory contributes to a revision.
public enum DirectoryListing {
    /// Relative path → URL of every regular file under `directory`, sorted; symbolic links
    /// are refused rather than followed out of the directory.
    public static func regularFiles(under directory: URL) throws -> [(path: String, url: URL)] {
        let root = directory.standardizedFileURL.resolvingSymlinksInPath()
        guard let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey, .isSymbolicLinkKey],
                                                              options: [.skipsHiddenFiles]) else {
            throw RegistryError.invalidPath(directory.path, reason: "cannot list the directory")
        }
        var files: [(String, URL)] = []
        for case let url as URL in enumerator {
            let values = try url.resourceValues(forKeys: [.isRegularFileKey, .isSymbolicLinkKey])
            let relative = String(url.standardizedFileURL.path.dropFirst(root.path.count + 1))
            if values.isSymbolicLink == true { throw RegistryError.invalidPath(relative, reason: "is a symbolic link; only regular files are stored") }
            guard values.isRegularFile == true else { continue }
            files.append((relative, url))
        }
        return files.sorted { $0.0 < $1.0 }
    }
}
