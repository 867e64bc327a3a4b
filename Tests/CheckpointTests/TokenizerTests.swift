@testable import Checkpoint
import Foundation
import HubTestSupport
import Testing

@Suite("Byte-level BPE tokenizer")
struct TokenizerTests {
    static func shippedTokenizer() throws -> BPETokenizer {
        try BPETokenizer(gguf: GGUFFile(path: Assets.modelGGUF().path))
    }

    /// The fixture's texts: real ones are referenced by task file and example, edge cases are inline.
    static func fixtureCases() throws -> [(label: String, text: String, ids: [Int])] {
        let root = try #require(try Assets.fixtureJSON("smollm2-135m-tokenizer.json") as? [String: Any])
        let cases = try #require(root["cases"] as? [[String: Any]])
        var taskCache: [String: [[String: Any]]] = [:]
        return try cases.map { item in
            let ids = try #require(item["ids"] as? [Int])
            if let text = item["text"] as? String { return ("inline \(text.debugDescription.prefix(40))", text, ids) }
            let source = try #require(item["source"] as? [String: Any])
            let file = try #require(source["file"] as? String)
            let index = try #require(source["example"] as? Int)
            let field = try #require(source["field"] as? String)
            let limit = try #require(source["max_scalars"] as? Int)
            if taskCache[file] == nil {
                let task = try JSONSerialization.jsonObject(with: Data(contentsOf: Assets.bigbench(file))) as? [String: Any]
                taskCache[file] = try #require(task?["examples"] as? [[String: Any]])
            }
            let full = try #require(taskCache[file]?[index][field] as? String)
            let text = String(String.UnicodeScalarView(full.unicodeScalars.prefix(limit)))
            return ("\(file)#\(index).\(field)", text, ids)
        }
    }

    @Test("ids equal the Hugging Face tokenizer's on 230 real and edge-case texts")
    func parityWithHuggingFace() throws {
        let tokenizer = try Self.shippedTokenizer()
        let cases = try Self.fixtureCases()
        #expect(cases.count >= 200)
        var mismatches = 0
        for item in cases {
            let ids = tokenizer.encode(item.text)
            if ids != item.ids {
                mismatches += 1
                let at = zip(ids, item.ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(ids.count, item.ids.count)
                Issue.record("\(item.label): first difference at token \(at): \(Array(ids.dropFirst(at).prefix(5))) vs \(Array(item.ids.dropFirst(at).prefix(5)))")
            }
        }
        #expect(mismatches == 0)
    }

    @Test("decoding gives back the text (bytes the vocabulary lacks excepted)")
    func decodeRoundTrip() throws {
        let tokenizer = try Self.shippedTokenizer()
        for item in try Self.fixtureCases() where !item.text.unicodeScalars.contains(where: { $0.value < 9 }) {
            #expect(tokenizer.decode(tokenizer.encode(item.text)) == item.text, "\(item.label)")
        }
    }

    @Test("special tokens are matched whole, and only where written exactly")
    func specialTokens() throws {
        let tokenizer = try Self.shippedTokenizer()
        let start = try #require(tokenizer.id(of: "<|im_start|>"))
        let end = try #require(tokenizer.id(of: "<|im_end|>"))
        let ids = tokenizer.encode("<|im_start|>user\nHi<|im_end|>")
        #expect(ids.first == start)
        #expect(ids.last == end)
        #expect(!tokenizer.encode("<|im_start|").contains(start))
        #expect(tokenizer.decode(ids, skipSpecialTokens: true) == "user\nHi")
        #expect(tokenizer.bosTokenID == 1)
        #expect(tokenizer.eosTokenID == 2)
    }

    @Test("digits are split one by one (SmolLM's pre-tokenizer)")
    func digits() throws {
        let tokenizer = try Self.shippedTokenizer()
        let ids = tokenizer.encode("2024")
        #expect(ids.count == 4)
        #expect(ids.map { tokenizer.decode([$0]) } == ["2", "0", "2", "4"])
    }

    @Test("the exported tokenizer.json loads back into an identical tokenizer")
    func huggingFaceJSONRoundTrip() throws {
        let tokenizer = try Self.shippedTokenizer()
        let directory = try TemporaryDirectory()
        let url = directory.path("tokenizer.json")
        try JSONSerialization.data(withJSONObject: tokenizer.huggingFaceJSON()).write(to: url)
        try JSONSerialization.data(withJSONObject: tokenizer.huggingFaceConfigJSON(chatTemplate: nil, maxLength: 8192))
            .write(to: directory.path("tokenizer_config.json"))
        let loaded = try BPETokenizer(huggingFaceJSON: url)
        #expect(loaded.tokens == tokenizer.tokens)
        #expect(loaded.merges == tokenizer.merges)
        #expect(loaded.preTokenizer == .smollm)
        #expect(loaded.specialTokenIDs.sorted() == tokenizer.specialTokenIDs.sorted())
        #expect(loaded.eosTokenID == 2)
        for item in try Self.fixtureCases().prefix(60) { #expect(loaded.encode(item.text) == item.ids) }
    }

    @Test("unsupported tokenizers are refused by name")
    func unsupported() throws {
        var builder = GGUFBuilder()
        builder.metadata = [("tokenizer.ggml.model", .string("llama"))]
        let directory = try TemporaryDirectory()
        try builder.write(to: directory.path("t.gguf"))
        let file = try GGUFFile(path: directory.path("t.gguf").path)
        #expect(throws: TokenizerError.unsupportedModel(source: file.path, model: "llama")) { try BPETokenizer(gguf: file) }

        builder.metadata = [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("qwen2"))]
        try builder.write(to: directory.path("u.gguf"))
        let other = try GGUFFile(path: directory.path("u.gguf").path)
        #expect(throws: TokenizerError.unsupportedPreTokenizer(source: other.path, name: "qwen2")) { try BPETokenizer(gguf: other) }
    }

    @Test("a merge that does not join two tokens into a third is refused")
    func badMerge() {
        let alphabet = (0 ..< 256).map { String(ByteLevelAlphabetForTests.character($0)) }
        #expect(throws: TokenizerError.invalidMerge(rank: 0, merge: "a b")) {
            try BPETokenizer(tokens: alphabet, merges: ["a b"], preTokenizer: .gpt2, specialTokenIDs: [])
        }
    }
}

/// The GPT-2 byte alphabet, rebuilt here independently of the code under test.
enum ByteLevelAlphabetForTests {
    static func character(_ byte: Int) -> Unicode.Scalar {
        let printable = Array(33 ... 126) + Array(161 ... 172) + Array(174 ... 255)
        if printable.contains(byte) { return Unicode.Scalar(UInt32(byte))! }
        let rank = (0 ..< 256).filter { !printable.contains($0) }.firstIndex(of: byte)!
        return Unicode.Scalar(UInt32(256 + rank))!
    }
}

@Suite("Streaming decoder")
struct StreamingDecoderTests {
    @Test("text streamed token by token equals the whole decode, and never splits a character")
    func streaming() throws {
        let tokenizer = try TokenizerTests.shippedTokenizer()
        for text in ["Emoji 😀🎉👍🏽 and 中文文本测试, Ελληνικά", "plain ascii text", "ü€𝄞"] {
            var decoder = StreamingDecoder(tokenizer: tokenizer)
            var pieces: [String] = []
            for token in tokenizer.encode(text) { pieces.append(decoder.append(token)) }
            pieces.append(decoder.finish())
            #expect(pieces.joined() == text)
            #expect(!pieces.joined().contains("\u{FFFD}"))
        }
    }

    @Test("a dangling lead byte is held back, then released as U+FFFD at the end")
    func danglingBytes() {
        #expect(StreamingDecoder.completePrefixLength([0x61, 0xE2, 0x82]) == 1)
        #expect(StreamingDecoder.completePrefixLength([0x61, 0xE2, 0x82, 0xAC]) == 4)
        #expect(StreamingDecoder.completePrefixLength([0xF0, 0x9F]) == 0)
        #expect(StreamingDecoder.completePrefixLength([0x80, 0x80, 0x80, 0x80]) == 4)
    }
}
