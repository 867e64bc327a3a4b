/// How text is cut into pieces before BPE merges apply within each piece.
public enum PreTokenizer: String, Sendable, Codable {
    /// GPT-2's split: contractions, ` ?letters`, ` ?numbers`, ` ?other symbols`, whitespace runs.
    case gpt2
    /// SmolLM's: every numeric character on its own, then the GPT-2 split.
    case smollm

    /// The pre-tokenizer named by GGUF's `tokenizer.ggml.pre`.
    public init?(ggufName: String) {
        switch ggufName {
        case "gpt2", "default", "gpt-2": self = .gpt2
        case "smollm", "starcoder", "refact", "codeshell": self = .smollm
        default: return nil
        }
    }

    /// Splits `text` into pieces, as ranges of its unicode scalars.
    func split(_ scalars: [Unicode.Scalar], _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        switch self {
        case .gpt2:
            Self.gpt2Split(scalars, range, into: &pieces)
        case .smollm:
            var start = range.lowerBound
            for i in range where Self.isNumber(scalars[i]) {
                if start < i { Self.gpt2Split(scalars, start ..< i, into: &pieces) }
                pieces.append(i ..< i + 1)
                start = i + 1
            }
            if start < range.upperBound { Self.gpt2Split(scalars, start ..< range.upperBound, into: &pieces) }
        }
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    /// The regex `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
    /// matched by hand: at each position the first alternative that matches wins, greedily.
    static func gpt2Split(_ s: [Unicode.Scalar], _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        let end = range.upperBound
        var i = range.lowerBound
        while i < end {
            let c = s[i]
            if c == "'", i + 1 < end {
                let a = s[i + 1]
                if a == "s" || a == "t" || a == "m" || a == "d" {
                    pieces.append(i ..< i + 2); i += 2; continue
                }
                if i + 2 < end {
                    let b = s[i + 2]
                    if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") {
                        pieces.append(i ..< i + 3); i += 3; continue
                    }
                }
            }
            // ` ?X+`: an optional leading space, then a run of one class.
            let k = (c == " " && i + 1 < end) ? i + 1 : i
            let head = s[k]
            var j = k
            if isLetter(head) {
                while j < end, isLetter(s[j]) { j += 1 }
            } else if isNumber(head) {
                while j < end, isNumber(s[j]) { j += 1 }
            } else if !isWhitespace(head) {
                while j < end, !isWhitespace(s[j]), !isLetter(s[j]), !isNumber(s[j]) { j += 1 }
            }
            if j > k { pieces.append(i ..< j); i = j; continue }
            // A whitespace run: all of it at the end of text; otherwise all but its last
            // character, which may lead the next piece (`\s+(?!\S)`), or a lone one (`\s+`).
            j = i
            while j < end, isWhitespace(s[j]) { j += 1 }
            if j == end || j - i == 1 {
                pieces.append(i ..< j)
                i = j
            } else {
                pieces.append(i ..< j - 1)
                i = j - 1
            }
        }
    }
}
