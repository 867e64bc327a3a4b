import Checkpoint
import Foundation
import Testing

@Suite("LLaMA config.json")
struct LlamaConfigTests {
    func decode(_ json: String) throws -> LlamaConfig {
        try JSONDecoder().decode(LlamaConfig.self, from: Data(json.utf8))
    }

    @Test("optional fields take transformers' defaults; eos may be a list")
    func defaults() throws {
        let config = try decode(#"{"vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "eos_token_id": [7, 8]}"#)
        #expect(config.numKeyValueHeads == 4)
        #expect(config.resolvedHeadDim == 16)
        #expect(config.ropeTheta == 10000)
        #expect(config.rmsNormEps == 1e-6)
        #expect(!config.tieWordEmbeddings)
        #expect(config.eosTokenID == 7)
        let again = try JSONDecoder().decode(LlamaConfig.self, from: config.jsonData())
        #expect(again == config)
    }

    @Test("invalid combinations are refused naming the field")
    func invalid() throws {
        let base = #""vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2"#
        #expect(throws: LlamaConfigError.invalid(field: "num_key_value_heads", reason: "3 does not divide num_attention_heads 4")) {
            try decode("{\(base), \"num_attention_heads\": 4, \"num_key_value_heads\": 3}")
        }
        #expect(throws: LlamaConfigError.self) { try decode("{\(base), \"num_attention_heads\": 5}") }
        #expect(throws: LlamaConfigError.self) { try decode("{\(base), \"num_attention_heads\": 4, \"hidden_act\": \"gelu\"}") }
        #expect(throws: DecodingError.self) { try decode("{\"hidden_size\": 64}") }
    }

    @Test("load names the file and the missing field")
    func loadErrors() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(#"{"hidden_size": 64}"#.utf8).write(to: url)
        #expect(throws: LlamaConfigError.undecodable(path: url.path, reason: "missing field 'vocab_size'")) { try LlamaConfig.load(from: url) }
    }
}
