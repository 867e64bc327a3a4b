import Checkpoint
import Foundation
import HubCore
import Transformer

/// The recovery fine-tuning text: 5.70M tokens (SmolLM2's tokenizer, 23.6 MB) of real English from BIG-bench task files
/// that the set-up fetches and pins by sha256 (scripts/assets.sha256), none of them a task the
/// evaluator scores:
///
/// | source | what | documents |
/// |---|---|---|
/// | gem/xsum, articles 64..<900 | BBC news articles | 836 (1.5 MB) |
/// | paragraph_segmentation | the English Wikipedia articles among its multilingual inputs | 1,020 (9.0 MB) |
/// | vitaminc_fact_verification | the Wikipedia evidence sentences (not the claims), by page | 3,068 (4.2 MB) |
/// | multiemo/all_text_en | hotel, medical, school and product reviews | 8,215 (6.3 MB) |
/// | topical_chat | whole two-person conversations (each once, not every prefix) | 1,078 (2.6 MB) |
///
/// Disjoint by construction from the evaluator's test articles (xsum 900..<1001), the
/// compressor's calibration text (xsum 0..<64), and every task `hubctl eval` scores. The
/// documents are shuffled once by a fixed seed, so any prefix of the stream mixes the
/// sources; each ends with `<|endoftext|>`. The whole document list is pinned by
/// `pinnedSHA256`, so a change in extraction or in the files is refused, not silently used.
///
/// A run may read only some sources (`tokens(_:tokenizer:sources:)`): the stream is then the
/// same shuffled order with the other sources' documents left out, so a run that adapts to
/// one domain (the news articles, say) still reads a pinned, reproducible prefix.
public struct FineTuneCorpus: Sendable {
    public static let name = "compression-hub finetune corpus v1"
    /// sha256 of the documents, in order, each followed by `<|endoftext|>`, as UTF-8.
    public static let pinnedSHA256 = "b99bc39e720e5621fb64544fe8cec2efbc106c42980193928dc1cda0057205ad"
    static let separator = "<|endoftext|>"
    static let shuffleSeed: UInt64 = 0x5EED_C0FFEE

    /// Task files, relative to the BIG-bench directory (`documents(from:examples:)` says how
    /// each becomes documents).
    public static let sources = [
        "gem/xsum/task.json", "paragraph_segmentation/task.json", "vitaminc_fact_verification/task.json",
        "multiemo/all_text_en/task.json", "topical_chat/task.json",
    ]

    public let documents: [String]
    /// Each document's source, an index into `sources`.
    public let documentSources: [Int]
    public let sha256: SHA256Digest
    /// Documents and UTF-8 bytes taken from each source, in `sources` order.
    public let sizes: [(source: String, documents: Int, bytes: Int)]

    /// Reads and checks the corpus from the fetched BIG-bench files under `bigbench`.
    public init(bigbench: URL) throws {
        var documents: [String] = [], documentSources: [Int] = []
        var sizes: [(source: String, documents: Int, bytes: Int)] = []
        for (index, path) in Self.sources.enumerated() {
            let examples = try Self.examples(bigbench.appendingPathComponent(path))
            let taken = Self.documents(from: path, examples: examples)
            sizes.append((path, taken.count, taken.reduce(0) { $0 + $1.utf8.count }))
            documents += taken
            documentSources += Array(repeating: index, count: taken.count)
        }
        var generator = SplitMix64(seed: Self.shuffleSeed)
        for i in stride(from: documents.count - 1, to: 0, by: -1) {
            let j = Int(generator.next() % UInt64(i + 1))
            documents.swapAt(i, j)
            documentSources.swapAt(i, j)
        }
        let digest = SHA256Digest.of(Data(documents.map { $0 + Self.separator }.joined().utf8))
        if digest.hex != Self.pinnedSHA256 {
            throw FineTuneError.corpusMismatch(directory: bigbench.path, found: digest.hex, pinned: Self.pinnedSHA256)
        }
        self.documents = documents
        self.documentSources = documentSources
        self.sizes = sizes
        sha256 = digest
    }

    /// A source's short name, as a user writes it: its task path without `/task.json`.
    public static func shortName(_ source: String) -> String {
        source.hasSuffix("/task.json") ? String(source.dropLast("/task.json".count)) : source
    }

    /// The sources named (short names or task paths), in `sources` order; an unknown name is
    /// refused with the list of known ones. nil or empty: every source.
    public static func selection(_ names: [String]?) throws -> [String]? {
        guard let names, !names.isEmpty else { return nil }
        for name in names where !sources.contains(name) && !sources.map(shortName).contains(name) {
            throw FineTuneError.invalid("unknown corpus source \"\(name)\"; the sources are \(sources.map(shortName).joined(separator: ", "))")
        }
        return sources.map(shortName).filter { names.contains($0) || names.contains($0 + "/task.json") }
    }

    /// How a run's corpus is named in messages: "" for every source, else " (only a, b)".
    static func restriction(_ sources: [String]?) -> String {
        sources.map { " (only " + $0.joined(separator: ", ") + ")" } ?? ""
    }

    /// The first `count` tokens of the stream (documents in order, each followed by
    /// `<|endoftext|>`), of every source or only of `sources` (short names, as `selection`
    /// returns them); only as many documents are tokenized as that takes.
    public func tokens(_ count: Int, tokenizer: BPETokenizer, sources selected: [String]? = nil) throws -> [Int] {
        let names = try Self.selection(selected)
        let chosen = Set(Self.sources.indices.filter { names?.contains(Self.shortName(Self.sources[$0])) ?? true })
        // A token is at least one byte: refuse a D beyond that bound before tokenizing it all.
        let bound = chosen.reduce(0) { $0 + sizes[$1].bytes + sizes[$1].documents }
        guard count <= bound else { throw FineTuneError.corpusTooSmall(atMost: bound, needed: count, sources: names) }
        var stream: [Int] = []
        stream.reserveCapacity(count + 4096)
        for (document, source) in zip(documents, documentSources) where stream.count < count && chosen.contains(source) {
            stream += tokenizer.encode(document + Self.separator)
        }
        guard stream.count >= count else { throw FineTuneError.corpusTooShort(tokens: stream.count, needed: count) }
        return Array(stream.prefix(count))
    }

    static func examples(_ file: URL) throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw FineTuneError.corpusMissing(file.path)
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let examples = root["examples"] as? [[String: Any]] else {
            throw FineTuneError.corpusMissing("\(file.path) (not a BIG-bench task file)")
        }
        return examples
    }

    static func documents(from path: String, examples: [[String: Any]]) -> [String] {
        let inputs = examples.map { $0["input"] as? String ?? "" }
        switch path {
        case "gem/xsum/task.json":
            return Array(inputs[64 ..< min(900, inputs.count)])
        case "paragraph_segmentation/task.json":
            return inputs.filter(isEnglish)
        case "vitaminc_fact_verification/task.json":
            // "Page: evidence sentence\nClaim: …": keep each distinct evidence sentence once,
            // grouped by page in order of first appearance.
            var order: [String] = [], pages: [String: [String]] = [:], seen = Set<String>()
            for input in inputs {
                let evidence = String(input.components(separatedBy: "\nClaim:")[0])
                guard seen.insert(evidence).inserted, let colon = evidence.range(of: ": ") else { continue }
                let page = String(evidence[..<colon.lowerBound]), sentence = String(evidence[colon.upperBound...])
                if pages[page] == nil { order.append(page) }
                pages[page, default: []].append(sentence)
            }
            return order.map { "\($0): " + pages[$0]!.joined(separator: " ") }
        case "topical_chat/task.json":
            // Every turn is an example whose input is the conversation so far (with the
            // speaker labels swapped turn by turn): keep the last of each conversation.
            func plain(_ s: String) -> String { s.replacingOccurrences(of: "agent_A: ", with: "").replacingOccurrences(of: "agent_B: ", with: "") }
            let normalized = inputs.map(plain)
            return inputs.indices.compactMap { i in
                i + 1 < inputs.count && normalized[i + 1].hasPrefix(normalized[i]) ? nil
                    : inputs[i].replacingOccurrences(of: "\" agent_", with: "\"\nagent_")
            }
        default:
            return inputs
        }
    }

    /// Mostly ASCII and rich in English function words: the English articles of a
    /// multilingual file.
    static func isEnglish(_ text: String) -> Bool {
        let scalars = text.unicodeScalars
        let ascii = scalars.reduce(0) { $0 + ($1.isASCII ? 1 : 0) }
        guard Double(ascii) >= 0.97 * Double(max(scalars.count, 1)) else { return false }
        let common: Set<Substring> = ["the", "and", "of", "is", "was", "in", "to", "a", "for", "that", "with", "as", "by", "on"]
        let words = text.lowercased().split(whereSeparator: { $0 == " " || $0 == "\n" })
        return Double(words.filter(common.contains).count) >= 0.12 * Double(max(words.count, 1))
    }
}
