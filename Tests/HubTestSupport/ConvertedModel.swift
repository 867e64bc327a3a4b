import Checkpoint
import Foundation

/// The shipped model converted to a Hugging Face directory once per test process, for the
/// tests that run it; removed when the process exits.
public enum ConvertedModel {
    static let root = FileManager.default.temporaryDirectory.appendingPathComponent("hub-test-model-\(getpid())")

    private static let result: Result<URL, Error> = Result {
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let output = root.appendingPathComponent("smollm2")
        _ = try GGUFConverter.convert(GGUFFile(path: Assets.modelGGUF().path), to: output)
        atexit { try? FileManager.default.removeItem(at: ConvertedModel.root) }
        return output
    }

    public static func directory() throws -> URL { try result.get() }
}
