import Checkpoint
import Foundation
import HubTestSupport
import Testing

/// Each way a GGUF file can lie gets its own typed error, raised before any data is read.
@Suite("GGUF reader rejects bad files")
struct GGUFRejectionTests {
    func parse(_ bytes: [UInt8]) throws -> GGUFFile {
        let directory = try TemporaryDirectory()
        let url = directory.path("bad.gguf")
        try Data(bytes).write(to: url)
        return try GGUFFile(path: url.path)
    }

    func expectError(_ bytes: [UInt8], _ matches: (GGUFError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try parse(bytes)
            Issue.record("parsed a bad file", sourceLocation: sourceLocation)
        } catch let error as GGUFError {
            #expect(matches(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains("bad.gguf"), "error does not name the file: \(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("untyped error \(error)", sourceLocation: sourceLocation)
        }
    }

    var valid: GGUFBuilder { GGUFReaderTests.sampleBuilder() }

    @Test func badMagic() {
        var bytes = valid.build()
        bytes[0] = UInt8(ascii: "X")
        expectError(bytes) { if case .badMagic = $0 { true } else { false } }
    }

    @Test func unsupportedVersion() {
        var builder = valid
        builder.version = 7
        expectError(builder.build()) { $0 == .unsupportedVersion(path: $0.pathForTest, version: 7) }
    }

    @Test func bigEndianFile() {
        var bytes = valid.build()
        bytes.replaceSubrange(4 ..< 8, with: [0, 0, 0, 3])
        expectError(bytes) { if case .bigEndian = $0 { true } else { false } }
    }

    @Test("every truncation of a valid file is an error, never a crash")
    func everyTruncation() throws {
        let bytes = valid.build()
        let dataStart = try parse(bytes).dataOffset
        for length in 0 ..< dataStart {
            do {
                _ = try parse(Array(bytes.prefix(length)))
                Issue.record("a file cut to \(length) bytes parsed")
            } catch let error as GGUFError {
                switch error {
                case .truncated, .badMagic, .tensorOutOfRange: break
                default: Issue.record("cut to \(length) bytes: unexpected \(error)")
                }
            }
        }
    }

    @Test func truncatedHeaderNamesWhatItWasReading() {
        let bytes = Array(valid.build().prefix(30))
        expectError(bytes) { error in
            guard case .truncated(_, _, _, _, let reading) = error else { return false }
            return reading.contains("general.architecture") || reading.contains("metadata")
        }
    }

    @Test("a count larger than the file could hold is refused before allocating")
    func hugeCounts() {
        var bytes = valid.build()
        bytes.replaceSubrange(16 ..< 24, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])  // metadata count
        expectError(bytes) { if case .truncated = $0 { true } else { false } }
        var tensors = valid.build()
        tensors.replaceSubrange(8 ..< 16, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
        expectError(tensors) { if case .truncated = $0 { true } else { false } }
    }

    @Test func hugeStringLength() {
        var builder = GGUFBuilder()
        builder.metadata = [("k", .string("value"))]
        var bytes = builder.build()
        // The value's length field follows magic, version, counts, the key and the type tag.
        let at = 4 + 4 + 8 + 8 + 8 + 1 + 4
        bytes.replaceSubrange(at ..< at + 8, with: [0, 0, 0, 0, 0, 0, 0, 0x40])
        expectError(bytes) { if case .truncated = $0 { true } else { false } }
    }

    @Test func unknownValueType() {
        var builder = GGUFBuilder()
        builder.metadata = [("k", .u8(1))]
        var bytes = builder.build()
        let at = 4 + 4 + 8 + 8 + 8 + 1
        bytes.replaceSubrange(at ..< at + 4, with: [99, 0, 0, 0])
        expectError(bytes) { $0 == .unknownValueType(path: $0.pathForTest, key: "k", type: 99) }
    }

    @Test func duplicateKey() {
        var builder = valid
        builder.metadata.append(("test.u8", .u8(1)))
        expectError(builder.build()) { $0 == .duplicateKey(path: $0.pathForTest, key: "test.u8") }
    }

    @Test func badAlignment() {
        var builder = valid
        builder.metadata.append(("general.alignment", .u32(48)))
        expectError(builder.build()) { if case .badAlignment = $0 { true } else { false } }
    }

    @Test func tensorOffsetOutOfRange() {
        var builder = valid
        builder.tensors[1].offset = 1 << 20
        var bytes = builder.build()
        bytes.removeLast(bytes.count - (try! parseDataOffset(valid)) - 64)
        expectError(bytes) { if case .tensorOutOfRange(_, let name, _, _, _) = $0 { name == "b" } else { false } }
    }

    func parseDataOffset(_ builder: GGUFBuilder) throws -> Int { try parse(builder.build()).dataOffset }

    @Test func overlappingTensors() {
        var builder = valid
        builder.tensors[1].offset = 0
        builder.tensors[1].data = []
        builder.tensors[1] = GGUFBuilder.f32Tensor("b", [7])
        builder.tensors[1].offset = 0
        expectError(builder.build()) { if case .overlappingTensors = $0 { true } else { false } }
    }

    @Test func misalignedTensor() {
        var builder = valid
        builder.tensors[1].offset = 36
        expectError(builder.build()) { $0 == .misalignedTensor(path: $0.pathForTest, tensor: "b", offset: 36, alignment: 32) }
    }

    @Test func unknownTensorType() {
        var builder = valid
        builder.tensors[0].type = 5  // a retired type number
        expectError(builder.build()) { $0 == .unknownTensorType(path: $0.pathForTest, tensor: "a", type: 5) }
    }

    @Test("a row length that is not a whole number of blocks is a shape/size mismatch")
    func shapeSizeMismatch() {
        var builder = valid
        builder.tensors[0] = GGUFBuilder.Tensor(name: "q", dims: [31, 1], type: 8, data: [UInt8](repeating: 0, count: 34))
        expectError(builder.build()) { if case .badDimensions(_, "q", _, let reason) = $0 { reason.contains("block size") } else { false } }
    }

    @Test func zeroOrTooManyDimensions() {
        var zero = valid
        zero.tensors[0].dims = [0, 2]
        expectError(zero.build()) { if case .badDimensions = $0 { true } else { false } }
        var five = valid
        five.tensors[0].dims = [1, 1, 1, 1, 6]
        expectError(five.build()) { if case .badDimensions = $0 { true } else { false } }
    }

    @Test func duplicateTensor() {
        var builder = valid
        builder.tensors[1].name = "a"
        expectError(builder.build()) { $0 == .duplicateTensor(path: $0.pathForTest, name: "a") }
    }

    @Test func invalidUTF8Key() {
        var builder = GGUFBuilder()
        builder.metadata = [("kk", .u8(1))]
        var bytes = builder.build()
        bytes[4 + 4 + 8 + 8 + 8] = 0xFF
        expectError(bytes) { if case .invalidString = $0 { true } else { false } }
    }

    @Test("random corruption of a valid file never crashes the reader")
    func randomCorruption() throws {
        let original = valid.build()
        var generator = SystemRandomNumberGenerator()
        for _ in 0 ..< 300 {
            var bytes = original
            for _ in 0 ..< Int.random(in: 1 ... 4, using: &generator) {
                bytes[Int.random(in: 0 ..< bytes.count, using: &generator)] = UInt8.random(in: 0 ... 255, using: &generator)
            }
            do {
                let file = try parse(bytes)
                for tensor in file.tensors where tensor.type.isDequantizable { _ = try file.dequantized(tensor) }
            } catch is GGUFError {
                // rejected with a typed error: fine
            }
        }
    }
}

extension GGUFError {
    /// The path every case carries, for building expected values in tests.
    var pathForTest: String {
        let text = description
        return String(text.prefix(while: { $0 != ":" }))
    }
}
