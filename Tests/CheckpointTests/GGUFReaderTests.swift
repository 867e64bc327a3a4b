import Checkpoint
import Foundation
import HubTestSupport
import Testing

@Suite("GGUF reader")
struct GGUFReaderTests {
    static func sampleBuilder() -> GGUFBuilder {
        var builder = GGUFBuilder()
        builder.metadata = [
            ("general.architecture", .string("llama")),
            ("test.u8", .u8(200)), ("test.i8", .i8(-5)), ("test.u16", .u16(65000)), ("test.i16", .i16(-300)),
            ("test.u32", .u32(4_000_000_000)), ("test.i32", .i32(-70000)), ("test.u64", .u64(1 << 40)),
            ("test.i64", .i64(-(1 << 40))), ("test.f32", .f32(0.5)), ("test.f64", .f64(-2.25)), ("test.bool", .bool(true)),
            ("test.strings", .array(8, [.string("a"), .string("ü€")])),
            ("test.nested", .array(9, [.array(4, [.u32(1), .u32(2)]), .array(4, [])])),
        ]
        builder.tensors = [
            GGUFBuilder.f32Tensor("a", [1, 2, 3, 4, 5, 6], dims: [3, 2]),
            GGUFBuilder.f32Tensor("b", [7]),
        ]
        return builder
    }

    func open(_ builder: GGUFBuilder, in directory: TemporaryDirectory) throws -> GGUFFile {
        let url = directory.path("model.gguf")
        try builder.write(to: url)
        return try GGUFFile(path: url.path)
    }

    @Test("reads every metadata value type, tensor infos and data")
    func readsEverything() throws {
        let directory = try TemporaryDirectory()
        let file = try open(Self.sampleBuilder(), in: directory)
        #expect(file.version == 3)
        #expect(file.metadata.count == 14)
        #expect(file["test.u8"] == .uint8(200))
        #expect(file["test.i8"] == .int8(-5))
        #expect(file["test.u16"] == .uint16(65000))
        #expect(file["test.i16"] == .int16(-300))
        #expect(file["test.u32"]?.integer == 4_000_000_000)
        #expect(file["test.i32"] == .int32(-70000))
        #expect(file["test.u64"]?.integer == 1 << 40)
        #expect(file["test.i64"]?.integer == -(1 << 40))
        #expect(file["test.f32"]?.number == 0.5)
        #expect(file["test.f64"]?.number == -2.25)
        #expect(file["test.bool"]?.bool == true)
        #expect(try file.requireStringArray("test.strings") == ["a", "ü€"])
        #expect(file["test.nested"]?.array?.first?.array?.compactMap(\.integer) == [1, 2])
        #expect(file.alignment == 32)
        #expect(file.dataOffset % 32 == 0)
        let a = try #require(file.tensorInfo(named: "a"))
        #expect(a.dimensions == [3, 2])
        #expect(a.shape == [2, 3])
        #expect(a.type == .f32)
        #expect(try file.dequantized("a") == [1, 2, 3, 4, 5, 6])
        #expect(try file.dequantized("b") == [7])
    }

    @Test("honours general.alignment")
    func customAlignment() throws {
        var builder = Self.sampleBuilder()
        builder.alignment = 64
        builder.metadata.append(("general.alignment", .u32(64)))
        let directory = try TemporaryDirectory()
        let file = try open(builder, in: directory)
        #expect(file.alignment == 64)
        #expect(file.dataOffset % 64 == 0)
        #expect(try file.dequantized("b") == [7])
    }

    @Test("reads version 2 files")
    func version2() throws {
        var builder = Self.sampleBuilder()
        builder.version = 2
        let directory = try TemporaryDirectory()
        #expect(try open(builder, in: directory).version == 2)
    }

    @Test("typed accessors name the key and the type they found")
    func accessorErrors() throws {
        let directory = try TemporaryDirectory()
        let file = try open(Self.sampleBuilder(), in: directory)
        #expect(throws: GGUFError.missingKey(path: file.path, key: "llama.block_count")) { try file.requireInteger("llama.block_count") }
        #expect(throws: GGUFError.wrongKeyType(path: file.path, key: "test.bool", expected: "an integer", found: .bool)) {
            try file.requireInteger("test.bool")
        }
        #expect(throws: GGUFError.missingTensor(path: file.path, name: "nope")) { try file.dequantized("nope") }
    }
}
