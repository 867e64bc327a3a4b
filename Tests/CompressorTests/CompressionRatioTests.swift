import Compressor
import Testing

@Suite("Compression ratio")
struct CompressionRatioTests {
    @Test("r = 1 - params(variant) / params(base)")
    func definition() {
        let r = CompressionRatio(variantParameters: 70, baseParameters: 100)
        #expect(abs(r.value - 0.3) < 1e-12)
        #expect(r.description == "30.00%")
    }

    @Test("requested ratios must lie strictly between 0 and 1", arguments: [0.0, 1.0, -0.1, 1.5, .nan, .infinity])
    func outOfRange(value: Double) {
        #expect(throws: CompressionRatioError.self) { try CompressionRatio(requested: value) }
    }

    @Test func accepted() throws {
        #expect(try CompressionRatio(requested: 0.5).value == 0.5)
    }
}
