import Checkpoint
import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

/// The registry's HTTP server against the real Hugging Face client, over loopback.
@Suite("Hugging Face compatible read API", .serialized)
struct HuggingFaceProtocolTests {
    /// Runs Python with huggingface_hub pointed at the server; returns its stdout.
    static func python(_ script: String, port: Int, cache: URL, token: String? = nil) throws -> (status: Int32, output: String) {
        let outcome = try Subprocess.python(["-c", script], environment: [
            "HF_ENDPOINT": "http://127.0.0.1:\(port)", "HF_HUB_CACHE": cache.path, "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_TOKEN": token,
        ])
        return (outcome.status, outcome.stdout + (outcome.status == 0 ? "" : outcome.stderr))
    }

    @Test("snapshot_download and hf_hub_download fetch the shipped model, every file hashing identically")
    func snapshotDownload() async throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let name = try RepositoryName("smollm2/SmolLM2-135M-Instruct")
        _ = try BaseModelImporter(registry: registry).importGGUF(at: Assets.modelGGUF(), as: name, author: "test")
        let card = try registry.card(name)
        let cache = directory.path("hf-cache")
        try await withServer(registry) { port in
            let script = """
            import hashlib, json, os
            from huggingface_hub import snapshot_download, hf_hub_download
            from huggingface_hub.errors import RepositoryNotFoundError, EntryNotFoundError, RevisionNotFoundError
            path = snapshot_download("smollm2/SmolLM2-135M-Instruct")
            hashes = {}
            for name in sorted(os.listdir(path)):
                with open(os.path.join(path, name), "rb") as handle:
                    hashes[name] = hashlib.sha256(handle.read()).hexdigest()
            single = hf_hub_download("smollm2/SmolLM2-135M-Instruct", "config.json", revision="\(card.revision)")
            errors = []
            for call in (lambda: hf_hub_download("smollm2/nope", "config.json"),
                         lambda: hf_hub_download("smollm2/SmolLM2-135M-Instruct", "missing.bin"),
                         lambda: hf_hub_download("smollm2/SmolLM2-135M-Instruct", "config.json", revision="v9")):
                try:
                    call(); errors.append(None)
                except (RepositoryNotFoundError, EntryNotFoundError, RevisionNotFoundError) as error:
                    errors.append(type(error).__name__)
            print(json.dumps({"snapshot": os.path.basename(path), "hashes": hashes, "single": os.path.basename(single), "errors": errors}))
            """
            let (status, output) = try Self.python(script, port: port, cache: cache)
            #expect(status == 0, "\(output)")
            let result = try #require(try JSONSerialization.jsonObject(with: Data((output.split(separator: "\n").last ?? "").utf8)) as? [String: Any])
            #expect(result["snapshot"] as? String == card.revision)
            let hashes = try #require(result["hashes"] as? [String: String])
            #expect(hashes == Dictionary(uniqueKeysWithValues: card.files.map { ($0.path, $0.sha256.hex) }))
            #expect(result["single"] as? String == "config.json")
            #expect(result["errors"] as? [String] == ["RepositoryNotFoundError", "RemoteEntryNotFoundError", "RevisionNotFoundError"])
        }
    }

    @Test("from_pretrained through HF_ENDPOINT loads a heterogeneous variant with the modeling code the daemon serves beside it")
    func remoteCode() async throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let tiny = try TinyCheckpoint.heterogeneous(seed: 9)
        let folder = directory.path("variant")
        try ModelDirectory.write(config: tiny.config, tensors: tiny.tensors, companions: [:], records: [:], to: folder)
        _ = try registry.commitDirectory(folder, to: RepositoryName("team/hetero"), message: "a heterogeneous model", author: "test") { files in
            try VariantInspector.record(kind: .base, files: files, sourceJSON: #"{"format":"test","file":"tiny"}"#,
                                        url: { folder.appendingPathComponent($0) })!
        }
        let script = Assets.repositoryRoot.appendingPathComponent("fixtures/scripts/transformers_logits.py").path
        let tokens = "3,17,0,31,8,22"
        let local = try Subprocess.python([script, folder.path, "--tokens", tokens, "--trust-remote-code"])
        #expect(local.status == 0, "\(local.stderr.suffix(2000))")
        try await withServer(registry) { port in
            let served = try Subprocess.python([script, "team/hetero", "--tokens", tokens, "--trust-remote-code"], environment: [
                "HF_ENDPOINT": "http://127.0.0.1:\(port)", "HF_HUB_CACHE": directory.path("hf-cache").path, "HF_MODULES_CACHE": directory.path("modules").path,
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": nil,
            ])
            #expect(served.status == 0, "\(served.stderr.suffix(2000))")
            let got = try JSONSerialization.jsonObject(with: Data(served.stdout.utf8)) as? [String: Any]
            #expect(got?["class"] as? String == "HubLlamaForCausalLM" && (got?["missing_keys"] as? [String])?.isEmpty == true)
            // The same code and weights as the directory it was registered from: the same logits.
            let want = try JSONSerialization.jsonObject(with: Data(local.stdout.utf8)) as? [String: Any]
            #expect((got?["logits"] as? [[Double]]) == (want?["logits"] as? [[Double]]) && (want?["logits"] as? [[Double]])?.count == 6)
            // The modeling code came from the daemon, as a file of the revision.
            #expect(FileManager.default.fileExists(atPath: directory.path("hf-cache/models--team--hetero").path))
        }
    }

    @Test("byte ranges are answered with 206 and exactly the bytes asked for")
    func ranges() async throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let content = directory.path("content")
        try FileManager.default.createDirectory(at: content, withIntermediateDirectories: true)
        let bytes = Data((0 ..< 100_000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        try bytes.write(to: content.appendingPathComponent("weights.bin"))
        let name = try RepositoryName("team/files")
        let revision = try registry.commitDirectory(content, to: name, message: "m", author: "a")
        try await withServer(registry) { port in
            let partial = try CurlTransfer.perform(method: "GET", url: "http://127.0.0.1:\(port)/team/files/resolve/main/weights.bin",
                                                   headers: ["Range: bytes=1000-1999"])
            #expect(partial.status == 206)
            #expect(partial.body == bytes[1000 ..< 2000])
            #expect(partial.headers["content-range"] == "bytes 1000-1999/100000")
            #expect(partial.headers["x-repo-commit"] == revision.id)
            #expect(partial.headers["etag"] == "\"\(SHA256Digest.of(bytes).hex)\"")
            let outside = try CurlTransfer.perform(method: "GET", url: "http://127.0.0.1:\(port)/team/files/resolve/main/weights.bin",
                                                   headers: ["Range: bytes=200000-"])
            #expect(outside.status == 416 && outside.headers["content-range"] == "bytes */100000")
            let whole = try CurlTransfer.perform(method: "GET", url: "http://127.0.0.1:\(port)/team/files/resolve/\(revision.id)/weights.bin")
            #expect(whole.body == bytes)
        }
    }
}
