/// A byte-level BPE tokenizer (GPT-2 style, as SmolLM2 uses): special tokens are matched
/// whole, the rest is pre-tokenized, spelled in the byte alphabet and merged by rank.
public struct BPETokenizer: Sendable {
    /// Token strings by id, in the vocabulary's own spelling.
    public let tokens: [String]
    /// Ranked merges as written in the vocabulary ("Ġ t").
    public let merges: [String]
    public let preTokenizer: PreTokenizer
    /// Tokens matched whole in input text, by id (control and user-defined tokens).
    public let specialTokenIDs: [Int]
    public let bosTokenID: Int?
    public let eosTokenID: Int?
    public let padTokenID: Int?
    public let unknownTokenID: Int?

    private let idForToken: [String: Int]
    /// (left id << 32 | right id) → (rank, merged id)
    private let mergeTable: [UInt64: (rank: Int32, merged: Int32)]
    private let idForByte: [Int32]
    private let specialByFirstScalar: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]]

    public init(tokens: [String], merges: [String], preTokenizer: PreTokenizer, specialTokenIDs: [Int],
                bos: Int? = nil, eos: Int? = nil, pad: Int? = nil, unknown: Int? = nil) throws(TokenizerError) {
        self.tokens = tokens
        self.merges = merges
        self.preTokenizer = preTokenizer
        self.specialTokenIDs = specialTokenIDs
        bosTokenID = bos
        eosTokenID = eos
        padTokenID = pad
        unknownTokenID = unknown
        for (name, id) in [("bos", bos), ("eos", eos), ("pad", pad), ("unknown", unknown)] {
            if let id, !tokens.indices.contains(id) { throw .tokenIDOutOfRange(role: name, id: id, vocabularySize: tokens.count) }
        }

        var idForToken: [String: Int] = [:]
        idForToken.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where idForToken[token] == nil { idForToken[token] = id }
        self.idForToken = idForToken

        // Vocabularies may lack tokens for bytes never seen in training (control characters);
        // like Hugging Face's BPE without an unk token, encoding drops such bytes.
        var idForByte = [Int32](repeating: -1, count: 256)
        for byte in 0 ..< 256 {
            if let id = idForToken[String(ByteLevelAlphabet.characterForByte[byte])] { idForByte[byte] = Int32(id) }
        }
        guard idForByte.contains(where: { $0 >= 0 }) else { throw .missingByteToken(byte: 0x20) }
        self.idForByte = idForByte

        var table: [UInt64: (rank: Int32, merged: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            let parts = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, let left = idForToken[String(parts[0])], let right = idForToken[String(parts[1])],
                  let merged = idForToken[String(parts[0]) + String(parts[1])] else {
                throw .invalidMerge(rank: rank, merge: merge)
            }
            let key = UInt64(left) << 32 | UInt64(right)
            if table[key] == nil { table[key] = (Int32(rank), Int32(merged)) }
        }
        mergeTable = table

        var special: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]] = [:]
        for id in specialTokenIDs {
            guard tokens.indices.contains(id) else { throw .tokenIDOutOfRange(role: "special", id: id, vocabularySize: tokens.count) }
            let scalars = Array(tokens[id].unicodeScalars)
            guard let first = scalars.first else { continue }
            special[first, default: []].append((scalars, id))
        }
        // Longest first, so that a special token that prefixes another never wins over it.
        specialByFirstScalar = special.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
    }

    public var vocabularySize: Int { tokens.count }

    public func id(of token: String) -> Int? { idForToken[token] }

    /// Token ids of `text`. Special tokens written in the text are matched whole, as the
    /// Hugging Face tokenizer does for added tokens; no BOS/EOS is added.
    public func encode(_ text: String) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var ids: [Int] = []
        ids.reserveCapacity(scalars.count / 3)
        var pieces: [Range<Int>] = []
        var segmentStart = 0
        var i = 0
        while i < scalars.count {
            if let (length, id) = specialToken(at: i, in: scalars) {
                if segmentStart < i { encodeOrdinary(scalars, segmentStart ..< i, pieces: &pieces, into: &ids) }
                ids.append(id)
                i += length
                segmentStart = i
            } else {
                i += 1
            }
        }
        if segmentStart < scalars.count { encodeOrdinary(scalars, segmentStart ..< scalars.count, pieces: &pieces, into: &ids) }
        return ids
    }

    /// The bytes one token stands for (a special token's text, for special tokens).
    public func bytes(of id: Int) -> [UInt8] {
        guard tokens.indices.contains(id) else { return [] }
        if specialTokenIDs.contains(id) { return Array(tokens[id].utf8) }
        return ByteLevelAlphabet.bytes(of: tokens[id]) ?? Array(tokens[id].utf8)
    }

    /// The text of token ids; bytes that do not form valid UTF-8 become U+FFFD.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        let special = Set(specialTokenIDs)
        for id in ids where tokens.indices.contains(id) {
            if special.contains(id) {
                if !skipSpecialTokens { bytes.append(contentsOf: tokens[id].utf8) }
            } else if let raw = ByteLevelAlphabet.bytes(of: tokens[id]) {
                bytes.append(contentsOf: raw)
            } else {
                bytes.append(contentsOf: tokens[id].utf8)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func specialToken(at i: Int, in scalars: [Unicode.Scalar]) -> (Int, Int)? {
        guard let candidates = specialByFirstScalar[scalars[i]] else { return nil }
        for candidate in candidates where i + candidate.scalars.count <= scalars.count {
            if scalars[i ..< i + candidate.scalars.count].elementsEqual(candidate.scalars) {
                return (candidate.scalars.count, candidate.id)
            }
        }
        return nil
    }

    private func encodeOrdinary(_ scalars: [Unicode.Scalar], _ range: Range<Int>, pieces: inout [Range<Int>], into ids: inout [Int]) {
        pieces.removeAll(keepingCapacity: true)
        preTokenizer.split(scalars, range, into: &pieces)
        var symbols: [Int32] = []
        for piece in pieces {
            symbols.removeAll(keepingCapacity: true)
            var text = String.UnicodeScalarView()
            text.append(contentsOf: scalars[piece])
            for byte in String(text).utf8 where idForByte[Int(byte)] >= 0 { symbols.append(idForByte[Int(byte)]) }
            merge(&symbols)
            for symbol in symbols { ids.append(Int(symbol)) }
        }
    }

    /// Applies the lowest-ranked merge available, left to right, until none applies.
    private func merge(_ symbols: inout [Int32]) {
        while symbols.count > 1 {
            var bestRank = Int32.max
            var bestIndex = -1
            var bestMerged: Int32 = 0
            for i in 0 ..< symbols.count - 1 {
                if let entry = mergeTable[UInt64(UInt32(symbols[i])) << 32 | UInt64(UInt32(symbols[i + 1]))], entry.rank < bestRank {
                    bestRank = entry.rank
                    bestIndex = i
                    bestMerged = entry.merged
                }
            }
            if bestIndex < 0 { return }
            symbols[bestIndex] = bestMerged
            symbols.remove(at: bestIndex + 1)
        }
    }
}

public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case unsupportedModel(source: String, model: String)
    case unsupportedPreTokenizer(source: String, name: String)
    case missingByteToken(byte: UInt8)
    case invalidMerge(rank: Int, merge: String)
    case tokenIDOutOfRange(role: String, id: Int, vocabularySize: Int)
    case invalidJSON(path: String, reason: String)

    public var description: String {
        switch self {
        case .unsupportedModel(let source, let model): "\(source): tokenizer model '\(model)' is not supported (expected byte-level BPE, 'gpt2')"
        case .unsupportedPreTokenizer(let source, let name): "\(source): pre-tokenizer '\(name)' is not supported (known: gpt2, smollm)"
        case .missingByteToken: "vocabulary has no single-byte tokens: not a byte-level BPE vocabulary"
        case .invalidMerge(let rank, let merge): "merge #\(rank) '\(merge)' does not join two vocabulary tokens into a third"
        case .tokenIDOutOfRange(let role, let id, let size): "\(role) token id \(id) is outside the vocabulary of \(size) tokens"
        case .invalidJSON(let path, let reason): "\(path): \(reason)"
        }
    }
}
