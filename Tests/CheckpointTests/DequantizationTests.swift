import Checkpoint
import Foundation
import HubCore
import HubTestSupport
import Testing

@Suite("Dequantization")
struct DequantizationTests {
    @Test("random blocks of every supported type decode bit-identically to the gguf package",
          arguments: ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16"])
    func randomBlocks(typeName: String) throws {
        let fixture = try #require(try Assets.fixtureJSON("quant-blocks.json") as? [String: [String: Any]])
        let entry = try #require(fixture[typeName])
        let raw = hexBytes(try #require(entry["raw_hex"] as? String))
        let expected = try #require(entry["values"] as? [Double]).map { Float($0) }
        let type = try #require(GGMLType.allCases.first { $0.description == typeName })
        var output = [Float](repeating: .nan, count: expected.count)
        try raw.withUnsafeBytes { source in
            try output.withUnsafeMutableBufferPointer { try Dequantizer.dequantize(source, type: type, tensor: typeName, into: $0) }
        }
        #expect(output.map(\.bitPattern) == expected.map(\.bitPattern))
    }

    @Test("types without a decoder are refused by name")
    func unsupportedType() {
        let raw = [UInt8](repeating: 0, count: GGMLType.q2_K.bytesPerBlock)
        var output = [Float](repeating: 0, count: 256)
        #expect(throws: GGUFError.cannotDequantize(tensor: "t", type: .q2_K)) {
            try raw.withUnsafeBytes { source in
                try output.withUnsafeMutableBufferPointer { try Dequantizer.dequantize(source, type: .q2_K, tensor: "t", into: $0) }
            }
        }
    }

    @Test("every tensor of the shipped model equals the gguf package's dequantization")
    func shippedModel() throws {
        let fixture = try #require(try Assets.fixtureJSON("smollm2-135m-dequantized.json") as? [String: Any])
        let tensors = try #require(fixture["tensors"] as? [[String: Any]])
        let url = try Assets.modelGGUF()
        #expect(try SHA256Digest.ofFile(at: url).hex == fixture["file_sha256"] as? String)
        let file = try GGUFFile(path: url.path)
        #expect(file.tensors.count == tensors.count)
        #expect(tensors.count == 272)
        var checked = 0
        for reference in tensors {
            let name = try #require(reference["name"] as? String)
            let info = try #require(file.tensorInfo(named: name), "missing \(name)")
            #expect(info.type.description == reference["type"] as? String)
            #expect(info.shape == reference["shape"] as? [Int])
            let values = try file.dequantized(info)
            let digest = values.withUnsafeBytes { SHA256Digest.of($0) }
            #expect(digest.hex == reference["sha256"] as? String, "\(name) differs from the reference")
            checked += 1
        }
        #expect(checked == 272)
    }

    func hexBytes(_ hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index ..< next], radix: 16)!)
            index = next
        }
        return bytes
    }
}
