import CArchive
import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

/// Bundles over libarchive: a faithful round trip, and every kind of hostile entry refused
/// with the registry left as it was.
@Suite("Bundles")
struct BundleTests {
    /// A base variant and a compressed child with a lineage edge and a metrics record. The
    /// records are written straight to the store: bundles carry them verbatim.
    func populated(_ directory: TemporaryDirectory, name: String) throws -> (HubRegistry, base: Revision, child: Revision) {
        let registry = try HubRegistry(dataDirectory: directory.path(name))
        let baseFiles = try makeContent(directory, name: "\(name)-base", files: ["config.json": Data("{\"model_type\": \"llama\"}".utf8),
                                                                                 "model.safetensors": randomBytes(200_000, seed: 11)])
        let record = VariantRecord(kind: .base, architecture: "llama", parameters: 50_000, embeddingParameters: 1_000, bytes: 200_023,
                                   configJSON: "{}", sourceJSON: #"{"format": "test"}"#)
        let base = try registry.commitDirectory(baseFiles, to: RepositoryName("team/base"), message: "base", author: "t") { _ in record }
        let childFiles = try makeContent(directory, name: "\(name)-child", files: ["model.safetensors": randomBytes(100_000, seed: 12),
                                                                                   "recipe.json": Data("{\"method\": \"slicegpt\"}".utf8)])
        let child = try registry.commitDirectory(childFiles, to: RepositoryName("team/child"), message: "child", author: "t",
                                                 lineage: (base.id, "{\"method\": \"slicegpt\"}")) { _ in
            VariantRecord(kind: .compressed, architecture: "llama", parameters: 25_000, embeddingParameters: 1_000, bytes: 100_022,
                          configJSON: "{}", sourceJSON: nil)
        }
        try registry.store.recordMetrics(StoredMetrics(revisionID: child.id, suite: "smoke", cpuModel: "cpu", blasThreads: 2,
                                                       recordJSON: "{\"suite\": \"smoke\"}", createdAt: "2026-11-23T00:00:00Z"))
        return (registry, base, child)
    }

    @Test("export then import restores files byte for byte, the variant, the metrics, and the lineage once the parent is there")
    func roundTrip() throws {
        let directory = try TemporaryDirectory()
        let (source, base, child) = try populated(directory, name: "source")
        let childBundle = directory.path("child.tar.zst"), baseBundle = directory.path("base.tar.zst")
        try BundleExporter(registry: source).export(RepositoryName("team/child"), to: childBundle)
        try BundleExporter(registry: source).export(RepositoryName("team/base"), revision: base.id, to: baseBundle)
        #expect(throws: BundleError.outputExists(childBundle.path)) {
            try BundleExporter(registry: source).export(RepositoryName("team/child"), to: childBundle)
        }

        // Without the parent, the lineage is kept in the source record.
        let lone = try HubRegistry(dataDirectory: directory.path("lone"))
        let orphan = try BundleImporter(registry: lone).importBundle(at: childBundle, author: "t")
        #expect(!orphan.lineageRestored)
        #expect(try lone.store.lineage(of: orphan.revision.id) == nil)
        #expect(try lone.store.variant(of: orphan.revision.id)?.sourceJSON?.contains(base.id) == true)

        let target = try HubRegistry(dataDirectory: directory.path("target"))
        let importedBase = try BundleImporter(registry: target).importBundle(at: baseBundle, author: "t")
        let imported = try BundleImporter(registry: target).importBundle(at: childBundle, author: "t")
        #expect(imported.lineageRestored)
        #expect(try target.store.lineage(of: imported.revision.id)?.parentRevisionID == importedBase.revision.id)
        #expect(try target.store.lineage(of: imported.revision.id)?.recipeJSON == source.store.lineage(of: child.id)?.recipeJSON)
        #expect(try target.store.files(of: imported.revision.id) == source.store.files(of: child.id))
        for file in try target.store.files(of: imported.revision.id) { #expect(try target.blobs.verify(file.sha256)) }
        #expect(try target.store.metrics(of: imported.revision.id).map(\.recordJSON) == source.store.metrics(of: child.id).map(\.recordJSON))
        let variant = try #require(try target.store.variant(of: imported.revision.id))
        #expect(variant.kind == .compressed && variant.parameters == 25_000)
    }

    /// Writes a tar (no compression) with the entries given, in order.
    func tar(_ url: URL, _ entries: [(name: String, data: Data, kind: String, declaredSize: Int?)]) throws {
        let archive = try #require(archive_write_new())
        defer { archive_write_free(archive) }
        archive_write_set_format_pax_restricted(archive)
        #expect(archive_write_open_filename(archive, url.path) == ARCHIVE_OK)
        for item in entries {
            let entry = try #require(archive_entry_new())
            archive_entry_set_pathname(entry, item.name)
            switch item.kind {
            case "symlink":
                archive_entry_set_filetype(entry, 0o120000)
                archive_entry_set_symlink(entry, "/etc/passwd")
                archive_entry_set_size(entry, 0)
            case "hardlink":
                archive_entry_set_filetype(entry, hub_archive_regular_file)
                archive_entry_set_hardlink(entry, "manifest.json")
                archive_entry_set_size(entry, 0)
            default:
                archive_entry_set_filetype(entry, hub_archive_regular_file)
                archive_entry_set_size(entry, la_int64_t(item.declaredSize ?? item.data.count))
            }
            archive_entry_set_perm(entry, 0o644)
            archive_write_header(archive, entry)
            if item.kind == "file" { _ = item.data.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) } }
            archive_entry_free(entry)
        }
        archive_write_close(archive)
    }

    @Test("hostile bundles are refused entry by entry, naming the entry, and leave the registry unchanged")
    func hostileBundles() throws {
        let directory = try TemporaryDirectory()
        let (source, _, _) = try populated(directory, name: "source")
        let good = directory.path("good.tar.zst")
        let manifest = try BundleExporter(registry: source).export(RepositoryName("team/child"), to: good)
        let encoder = JSONEncoder()
        let manifestData = try encoder.encode(manifest)
        let files = try manifest.files.map { ($0.path, try Data(contentsOf: source.blobs.fileURL(for: $0.sha256))) }
        let weights = files.first { $0.0 == "model.safetensors" }!.1, recipe = files.first { $0.0 == "recipe.json" }!.1
        var tampered = weights
        tampered[5] ^= 1
        let m: (String, Data, String, Int?) = ("manifest.json", manifestData, "file", nil)
        let w: (String, Data, String, Int?) = ("files/model.safetensors", weights, "file", nil)
        let r: (String, Data, String, Int?) = ("files/recipe.json", recipe, "file", nil)
        let cases: [(String, [(String, Data, String, Int?)], String)] = [
            ("absolute path", [m, ("/etc/cron.d/evil", Data("x".utf8), "file", nil), w, r], "absolute"),
            ("parent directory", [m, ("files/../../evil", Data("x".utf8), "file", nil), w, r], "'..'"),
            ("symbolic link", [m, ("files/model.safetensors", Data(), "symlink", nil), r], "links"),
            ("hard link", [m, ("files/model.safetensors", Data(), "hardlink", nil), r], "links"),
            ("unlisted entry", [m, w, r, ("files/extra.bin", Data("x".utf8), "file", nil)], "does not list"),
            ("size disagrees with the manifest", [m, ("files/model.safetensors", weights + Data([0]), "file", nil), r], "bytes"),
            ("content disagrees with the manifest", [m, ("files/model.safetensors", tampered, "file", nil), r], "hashes to"),
            ("a listed file is missing", [m, w], "recipe.json"),
            ("manifest not first", [w, m, r], "first entry"),
            ("duplicate entry", [m, w, w, r], "twice"),
        ]
        let target = try HubRegistry(dataDirectory: directory.path("target"))
        let before = try RegistrySnapshot(target)
        for (what, entries, fragment) in cases {
            let url = directory.path("\(what.replacingOccurrences(of: " ", with: "-")).tar")
            try tar(url, entries.map { (name: $0.0, data: $0.1, kind: $0.2, declaredSize: $0.3) })
            do {
                _ = try BundleImporter(registry: target).importBundle(at: url, author: "t")
                Issue.record("\(what): imported")
            } catch let error as BundleError {
                #expect(error.description.contains(fragment), "\(what): \(error)")
            }
            #expect(try RegistrySnapshot(target) == before, "\(what)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: target.dataDirectory.appendingPathComponent("tmp").path).isEmpty)
        }
        let notAnArchive = directory.path("plain.txt")
        try Data("hello".utf8).write(to: notAnArchive)
        #expect(throws: BundleError.self) { try BundleImporter(registry: target).importBundle(at: notAnArchive, author: "t") }
        // The untampered bundle imports.
        #expect(try BundleImporter(registry: target).importBundle(at: good, author: "t").manifest == manifest)
    }
}
