import Checkpoint
import Foundation
import HubTestSupport
import Testing

@Suite("safetensors")
struct SafetensorsTests {
    @Test("written tensors read back with their dtype, shape, bytes and metadata")
    func roundTrip() throws {
        let directory = try TemporaryDirectory()
        let url = directory.path("model.safetensors")
        let halves: [Float16] = [1.5, -2, 0.25]
        try SafetensorsWriter.write([
            .float32("b.weight", shape: [2, 3], values: [1, 2, 3, 4, 5, 6]),
            PendingTensor(name: "a.half", dtype: .f16, shape: [3]) { buffer in
                halves.withUnsafeBytes { buffer.copyMemory(from: $0) }
            },
            .float32("scalar", shape: [], values: [42]),
        ], metadata: ["format": "pt"], to: url)
        let file = try SafetensorsFile(path: url.path)
        #expect(file.entries.map(\.name) == ["b.weight", "a.half", "scalar"])
        #expect(file["b.weight"]?.shape == [2, 3])
        #expect(file["a.half"]?.dtype == .f16)
        #expect(try file.floats("b.weight") == [1, 2, 3, 4, 5, 6])
        #expect(try file.floats("a.half") == [1.5, -2, 0.25])
        #expect(try file.floats("scalar") == [42])
        #expect(file.metadata == ["format": "pt"])
        // The data section starts 8-byte aligned, as the reference writer's does.
        let headerLength = try Data(contentsOf: url).prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(headerLength % 8 == 0)
    }

    @Test("a producer that fails leaves no file and no temporary behind")
    func failedWriteLeavesNothing() throws {
        struct Boom: Error {}
        let directory = try TemporaryDirectory()
        let url = directory.path("model.safetensors")
        #expect(throws: Boom.self) {
            try SafetensorsWriter.write([
                .float32("ok", shape: [1], values: [1]),
                PendingTensor(name: "bad", dtype: .f32, shape: [4]) { _ in throw Boom() },
            ], to: url)
        }
        #expect(try directory.contents().isEmpty)
    }

    @Test func duplicateNamesAreRefused() throws {
        let directory = try TemporaryDirectory()
        #expect(throws: SafetensorsError.duplicateTensor(name: "x")) {
            try SafetensorsWriter.write([.float32("x", shape: [1], values: [1]), .float32("x", shape: [1], values: [2])],
                                        to: directory.path("m.safetensors"))
        }
    }

    // MARK: Rejection of bad files

    /// A file with the given header JSON and `dataBytes` bytes of data.
    func file(header: String, dataBytes: Int, declaredLength: UInt64? = nil) throws -> (TemporaryDirectory, String) {
        let directory = try TemporaryDirectory()
        let url = directory.path("bad.safetensors")
        var bytes = Data()
        var length = (declaredLength ?? UInt64(header.utf8.count)).littleEndian
        bytes.append(Data(bytes: &length, count: 8))
        bytes.append(Data(header.utf8))
        bytes.append(Data(count: dataBytes))
        try bytes.write(to: url)
        return (directory, url.path)
    }

    func expectRejected(header: String, dataBytes: Int, declaredLength: UInt64? = nil,
                        sourceLocation: SourceLocation = #_sourceLocation, _ matches: (SafetensorsError) -> Bool) throws {
        let (directory, path) = try file(header: header, dataBytes: dataBytes, declaredLength: declaredLength)
        defer { withExtendedLifetime(directory) {} }
        do {
            _ = try SafetensorsFile(path: path)
            Issue.record("a bad file was accepted", sourceLocation: sourceLocation)
        } catch let error as SafetensorsError {
            #expect(matches(error), "unexpected: \(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains("bad.safetensors"), sourceLocation: sourceLocation)
        }
    }

    @Test func tooShort() throws {
        let directory = try TemporaryDirectory()
        try Data([1, 2, 3]).write(to: directory.path("bad.safetensors"))
        #expect(throws: SafetensorsError.truncated(path: directory.path("bad.safetensors").path, size: 3)) {
            try SafetensorsFile(path: directory.path("bad.safetensors").path)
        }
    }

    @Test func oversizedHeader() throws {
        try expectRejected(header: "{}", dataBytes: 0, declaredLength: 200_000_000) {
            if case .headerTooLarge = $0 { true } else { false }
        }
    }

    @Test func headerBeyondFile() throws {
        try expectRejected(header: "{}", dataBytes: 0, declaredLength: 5000) {
            if case .headerOutOfRange = $0 { true } else { false }
        }
    }

    @Test func notJSON() throws {
        try expectRejected(header: "{not json", dataBytes: 0) { if case .invalidHeader = $0 { true } else { false } }
        try expectRejected(header: "[1, 2]", dataBytes: 0) { if case .invalidHeader = $0 { true } else { false } }
    }

    @Test func unknownDType() throws {
        try expectRejected(header: #"{"t":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4) {
            $0 == .unknownDType(path: $0.pathForTest, tensor: "t", dtype: "F12")
        }
    }

    @Test func shapeSizeMismatch() throws {
        try expectRejected(header: #"{"t":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#, dataBytes: 12) {
            if case .sizeMismatch(_, "t", [2, 2], .f32, 16, 12) = $0 { true } else { false }
        }
    }

    @Test func badShapeOrOffsets() throws {
        try expectRejected(header: #"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, dataBytes: 4) {
            if case .invalidEntry = $0 { true } else { false }
        }
        try expectRejected(header: #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, dataBytes: 4) {
            if case .invalidEntry = $0 { true } else { false }
        }
    }

    @Test func offsetOutOfRange() throws {
        try expectRejected(header: #"{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, dataBytes: 8) {
            if case .tensorOutOfRange(_, "t", 16, 8) = $0 { true } else { false }
        }
    }

    @Test func overlappingTensors() throws {
        try expectRejected(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                           dataBytes: 12) {
            if case .overlappingTensors = $0 { true } else { false }
        }
    }

    @Test func gapBetweenTensors() throws {
        try expectRejected(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                           dataBytes: 12) {
            if case .gapBeforeTensor(_, "b", 4, 8) = $0 { true } else { false }
        }
    }

    @Test func trailingBytes() throws {
        try expectRejected(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 10) {
            if case .trailingBytes(_, 4, 10) = $0 { true } else { false }
        }
    }

    @Test func metadataMustBeStrings() throws {
        try expectRejected(header: #"{"__metadata__":{"n":3}}"#, dataBytes: 0) {
            if case .invalidHeader = $0 { true } else { false }
        }
    }
}

extension SafetensorsError {
    var pathForTest: String { String(description.prefix(while: { $0 != ":" })) }
}
