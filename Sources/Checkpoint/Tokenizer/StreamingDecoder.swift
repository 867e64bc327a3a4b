/// Turns generated tokens into text as they arrive. A byte-level token can end in the middle
/// of a UTF-8 character; the decoder holds such bytes back until the character is complete.
public struct StreamingDecoder {
    private let tokenizer: BPETokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: BPETokenizer) {
        self.tokenizer = tokenizer
    }

    /// The text that `token` completes (possibly empty).
    public mutating func append(_ token: Int) -> String {
        pending += tokenizer.bytes(of: token)
        let complete = Self.completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever is still held back, with invalid sequences replaced by U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix of `bytes` that does not end inside a UTF-8 character.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        // Walk back over continuation bytes (at most 3) to the last lead byte.
        var index = bytes.count - 1
        var continuation = 0
        while index >= 0, bytes[index] & 0xC0 == 0x80, continuation < 3 {
            index -= 1
            continuation += 1
        }
        guard index >= 0 else { return bytes.count }
        let lead = bytes[index]
        let needed = lead < 0x80 ? 0 : lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0
        return continuation >= needed ? bytes.count : index
    }
}
