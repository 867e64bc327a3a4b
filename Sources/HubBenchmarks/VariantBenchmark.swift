import Foundation
import Transformer

/// Speed of compressed variants against their base: decode tokens/s and 512-token prefill,
/// base and variant measured alternately in rounds (so drift cancels), next to the ideal
/// speed-up 1 / (1 − r) that parameter count alone would give.
enum VariantBenchmark {
    static func run(base: String, variants: [String], threads: Int) throws {
        BLASThreads.count = threads
        let baseModel = try LlamaModel(directory: URL(fileURLWithPath: base))
        let prompt = Array(1000 ..< 1016), long = Array(1000 ..< 1512)

        func decodeRate(_ model: LlamaModel) throws -> Double {
            let result = try model.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: 48))
            return Double(result.tokens.count - 1) / result.decodeSeconds
        }
        func prefill(_ model: LlamaModel) throws -> Double {
            try time(1) { _ = model.logits(try model.forward(long, cache: model.makeCache(capacity: long.count)), rows: 1) }
        }

        print("variant                     r       decode ×   prefill ×   ideal 1/(1−r)   (medians of 3 alternating rounds, \(threads) threads)")
        for path in variants {
            let url = URL(fileURLWithPath: path)
            let model = try LlamaModel(directory: url)
            let recipe = try JSONSerialization.jsonObject(with: Data(contentsOf: url.appendingPathComponent("recipe.json"))) as? [String: Any]
            let r = (recipe?["achieved_ratio"] as? NSNumber)?.doubleValue ?? .nan
            _ = try decodeRate(model); _ = try decodeRate(baseModel)
            var decodeRatios: [Double] = [], prefillRatios: [Double] = []
            for _ in 0 ..< 3 {
                let baseDecode = try decodeRate(baseModel), variantDecode = try decodeRate(model)
                let basePrefill = try prefill(baseModel), variantPrefill = try prefill(model)
                decodeRatios.append(variantDecode / baseDecode)
                prefillRatios.append(basePrefill / variantPrefill)
            }
            print(String(format: "%@ %.3f   %6.2f×    %6.2f×      %6.2f×", url.lastPathComponent.padding(toLength: 26, withPad: " ", startingAt: 0),
                         r, median(decodeRatios), median(prefillRatios), 1 / (1 - r)))
        }
    }
}
