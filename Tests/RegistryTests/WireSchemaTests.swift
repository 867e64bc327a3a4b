import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

/// What the daemon serves and stores on the wire matches the JSON Schemas in `schemas/`.
@Suite("Wire schemas", .serialized)
struct WireSchemaTests {
    func validator(_ name: String) throws -> JSONSchemaValidator {
        try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/\(name).schema.json"))
    }

    @Test("upload statuses, commit requests, error answers and bundle manifests validate; broken ones do not")
    func schemas() async throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let bytes = randomBytes(100_000, seed: 5)
        let digest = SHA256Digest.of(bytes)
        let uploads = try validator("upload-status"), errors = try validator("error"), commits = try validator("commit-request")
        try await withServer(registry) { port in
            let token = try #require(AdminTokenFile.read(in: registry.dataDirectory))
            let begun = try rawRequest("POST", port: port, path: "/api/uploads", body: Data(#"{"sha256": "\#(digest.hex)", "size": 100000}"#.utf8), token: token)
            let id = try #require(begun.json?["id"] as? String)
            let half = try rawRequest("PATCH", port: port, path: "/api/uploads/\(id)", headers: ["Upload-Offset": "0"], body: bytes.prefix(50_000), token: token)
            let done = try rawRequest("PATCH", port: port, path: "/api/uploads/\(id)", headers: ["Upload-Offset": "50000"], body: bytes.suffix(50_000), token: token)
            let again = try rawRequest("POST", port: port, path: "/api/uploads", body: Data(#"{"sha256": "\#(digest.hex)", "size": 100000}"#.utf8), token: token)
            for answer in [begun, half, done, again] {
                #expect(uploads.violations(of: try #require(answer.json)) == [])
            }
            #expect(done.json?["complete"] as? Bool == true && again.json?["id"] == nil)
            let request = CommitRequest(message: "m", private: false, files: [.init(path: "weights.bin", sha256: digest)])
            let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(request))
            #expect(commits.violations(of: encoded) == [])
            let committed = try rawRequest("POST", port: port, path: "/api/models/team/schema/commit/main", body: JSONEncoder().encode(request), token: token)
            #expect(committed.status == 201)
            let refused = try rawRequest("POST", port: port, path: "/api/uploads", body: Data("{}".utf8))
            #expect(errors.violations(of: try #require(refused.json)) == [])
            #expect(!commits.violations(of: ["files": [["path": "../up", "sha256": digest.hex]]]).isEmpty)
        }
        let bundle = directory.path("schema.tar.zst")
        let manifest = try BundleExporter(registry: registry).export(RepositoryName("team/schema"), to: bundle)
        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(manifest)) as! [String: Any]
        let manifests = try validator("bundle-manifest")
        #expect(manifests.violations(of: encoded) == [])
        var broken = encoded
        broken["files"] = [["path": "/etc/passwd", "sha256": digest.hex, "size": 1]]
        #expect(!manifests.violations(of: broken).isEmpty)
    }
}
