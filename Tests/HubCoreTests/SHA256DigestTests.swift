import Foundation
import HubCore
import HubTestSupport
import Testing

@Suite("SHA-256 digests and atomic files")
struct SHA256DigestTests {
    @Test("known answers (FIPS 180-2 examples)")
    func knownAnswers() {
        #expect(SHA256Digest.of(Data()).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256Digest.of(Data("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("incremental hashing equals one-shot hashing, and files hash like their bytes")
    func incrementalAndFile() throws {
        let bytes = Data((0 ..< 10_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        var hasher = SHA256Hasher()
        for start in stride(from: 0, to: bytes.count, by: 777_777) {
            hasher.update(bytes[start ..< min(start + 777_777, bytes.count)])
        }
        #expect(hasher.finalize() == SHA256Digest.of(bytes))
        #expect(hasher.byteCount == bytes.count)
        let directory = try TemporaryDirectory()
        try bytes.write(to: directory.path("blob"))
        #expect(try SHA256Digest.ofFile(at: directory.path("blob")) == SHA256Digest.of(bytes))
    }

    @Test("parsing accepts 64 hex digits only, case-insensitively")
    func parsing() throws {
        let upper = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
        #expect(try SHA256Digest(hex: upper).hex == upper.lowercased())
        #expect(throws: DigestError.malformed("abc")) { try SHA256Digest(hex: "abc") }
        #expect(throws: DigestError.self) { try SHA256Digest(hex: String(repeating: "g", count: 64)) }
        let json = try JSONEncoder().encode([SHA256Digest.of(Data())])
        #expect(try JSONDecoder().decode([SHA256Digest].self, from: json) == [SHA256Digest.of(Data())])
        #expect(throws: (any Error).self) { try JSONDecoder().decode([SHA256Digest].self, from: Data(#"["zz"]"#.utf8)) }
    }

    @Test("an atomic write that fails leaves the destination untouched and no temporary file")
    func atomicWriteFailure() throws {
        struct Boom: Error {}
        let directory = try TemporaryDirectory()
        let destination = directory.path("file.txt")
        try AtomicFile.write(Data("old".utf8), to: destination)
        #expect(throws: Boom.self) {
            try AtomicFile.write(to: destination) { handle in
                try handle.write(contentsOf: Data("partial new content".utf8))
                throw Boom()
            }
        }
        #expect(try String(contentsOf: destination, encoding: .utf8) == "old")
        #expect(try directory.contents() == ["file.txt"])
        try AtomicFile.write(Data("new".utf8), to: destination)
        #expect(try String(contentsOf: destination, encoding: .utf8) == "new")
    }
}
