import Foundation

extension BPETokenizer {
    /// Builds the tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata.
    public init(gguf: GGUFFile) throws {
        let model = try gguf.requireString("tokenizer.ggml.model")
        guard model == "gpt2" else { throw TokenizerError.unsupportedModel(source: gguf.path, model: model) }
        let preName = gguf["tokenizer.ggml.pre"]?.string ?? "default"
        guard let pre = PreTokenizer(ggufName: preName) else {
            throw TokenizerError.unsupportedPreTokenizer(source: gguf.path, name: preName)
        }
        let tokens = try gguf.requireStringArray("tokenizer.ggml.tokens")
        let merges = try gguf.requireStringArray("tokenizer.ggml.merges")
        // Token types as llama.cpp numbers them: 3 is control, 4 user-defined; both are matched whole.
        let types = gguf["tokenizer.ggml.token_type"]?.array?.compactMap(\.integer) ?? []
        let special = types.enumerated().filter { $0.element == 3 || $0.element == 4 }.map(\.offset)
        func id(_ key: String) -> Int? { gguf[key]?.integer }
        try self.init(tokens: tokens, merges: merges, preTokenizer: pre, specialTokenIDs: special,
                      bos: id("tokenizer.ggml.bos_token_id"), eos: id("tokenizer.ggml.eos_token_id"),
                      pad: id("tokenizer.ggml.padding_token_id"), unknown: id("tokenizer.ggml.unknown_token_id"))
    }

    /// Loads a Hugging Face `tokenizer.json` of a byte-level BPE model.
    public init(huggingFaceJSON url: URL, tokenizerConfig configURL: URL? = nil) throws {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.invalidJSON(path: path, reason: "cannot read the file")
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TokenizerError.invalidJSON(path: path, reason: "not a JSON object")
        }
        guard let model = root["model"] as? [String: Any], let vocab = model["vocab"] as? [String: Int] else {
            throw TokenizerError.invalidJSON(path: path, reason: "missing model.vocab")
        }
        let modelType = model["type"] as? String ?? "?"
        guard modelType == "BPE" else { throw TokenizerError.unsupportedModel(source: path, model: modelType) }

        var added: [(id: Int, content: String)] = []
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = entry["id"] as? Int, let content = entry["content"] as? String else {
                throw TokenizerError.invalidJSON(path: path, reason: "added_tokens entry without id and content")
            }
            added.append((id, content))
        }
        let size = max(vocab.values.max().map { $0 + 1 } ?? 0, added.map { $0.id + 1 }.max() ?? 0)
        var tokens = [String?](repeating: nil, count: size)
        for (token, id) in vocab {
            guard id >= 0 else { throw TokenizerError.invalidJSON(path: path, reason: "negative id for '\(token)'") }
            tokens[id] = token
        }
        for token in added { tokens[token.id] = token.content }
        if let hole = tokens.firstIndex(where: { $0 == nil }) {
            throw TokenizerError.invalidJSON(path: path, reason: "no token has id \(hole); ids must be dense")
        }

        var merges: [String] = []
        for item in model["merges"] as? [Any] ?? [] {
            if let text = item as? String {
                merges.append(text)
            } else if let pair = item as? [String], pair.count == 2 {
                merges.append(pair[0] + " " + pair[1])
            } else {
                throw TokenizerError.invalidJSON(path: path, reason: "merge entry is neither \"a b\" nor [a, b]")
            }
        }

        let pre = try Self.preTokenizer(of: root["pre_tokenizer"], path: path)
        let config = Self.tokenizerConfig(at: configURL ?? url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json"))
        func id(_ key: String) -> Int? {
            guard let name = config[key] as? String else { return nil }
            return added.first(where: { $0.content == name })?.id ?? vocab[name]
        }
        try self.init(tokens: tokens.map { $0! }, merges: merges, preTokenizer: pre, specialTokenIDs: added.map(\.id),
                      bos: id("bos_token"), eos: id("eos_token"), pad: id("pad_token"), unknown: id("unk_token"))
    }

    private static func preTokenizer(of value: Any?, path: String) throws -> PreTokenizer {
        guard let object = value as? [String: Any], let type = object["type"] as? String else {
            throw TokenizerError.unsupportedPreTokenizer(source: path, name: "none")
        }
        let parts = type == "Sequence" ? (object["pretokenizers"] as? [[String: Any]] ?? []) : [object]
        let types = parts.compactMap { $0["type"] as? String }
        let byteLevelWithRegex = parts.contains { $0["type"] as? String == "ByteLevel" && ($0["use_regex"] as? Bool ?? true) }
        let individualDigits = parts.contains { $0["type"] as? String == "Digits" && ($0["individual_digits"] as? Bool ?? false) }
        switch (types, byteLevelWithRegex, individualDigits) {
        case (["ByteLevel"], true, _): return .gpt2
        case (["Digits", "ByteLevel"], true, true): return .smollm
        default: throw TokenizerError.unsupportedPreTokenizer(source: path, name: types.joined(separator: "+"))
        }
    }

    private static func tokenizerConfig(at configURL: URL) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: configURL.path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }

    /// The Hugging Face `tokenizer.json` document for this tokenizer.
    public func huggingFaceJSON() -> [String: Any] {
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let pre: [String: Any] = switch preTokenizer {
        case .gpt2: byteLevel
        case .smollm: ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
        }
        let added: [[String: Any]] = specialTokenIDs.map {
            ["id": $0, "content": tokens[$0], "single_word": false, "lstrip": false, "rstrip": false,
             "normalized": false, "special": true]
        }
        var vocab: [String: Int] = [:]
        for (id, token) in tokens.enumerated() where vocab[token] == nil { vocab[token] = id }
        return [
            "version": "1.0",
            "truncation": NSNull(),
            "padding": NSNull(),
            "added_tokens": added,
            "normalizer": NSNull(),
            "pre_tokenizer": pre,
            "post_processor": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merges,
            ] as [String: Any],
        ]
    }

    /// The companion `tokenizer_config.json`: special token names and the chat template.
    public func huggingFaceConfigJSON(chatTemplate: String?, maxLength: Int) -> [String: Any] {
        var config: [String: Any] = [
            "tokenizer_class": "GPT2Tokenizer",
            "model_max_length": maxLength,
            "clean_up_tokenization_spaces": false,
            "add_prefix_space": false,
        ]
        for (key, id) in [("bos_token", bosTokenID), ("eos_token", eosTokenID), ("pad_token", padTokenID), ("unk_token", unknownTokenID)] {
            if let id { config[key] = tokens[id] }
        }
        if let chatTemplate { config["chat_template"] = chatTemplate }
        return config
    }
}
