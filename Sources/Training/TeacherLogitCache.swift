import Foundation
import HubCore
import Transformer

/// The teacher's k largest next-token logits at every position of a run's sequences, computed
/// once and kept on disk, so that distilling students that read the same tokens (every cell of
/// a sweep distils the same parent on the same prefix of the corpus) do not each run the
/// teacher again. Distillation from it compares the student with the teacher's distribution
/// renormalised over those k tokens, at the run's temperature: the usual sparse form of
/// knowledge distillation. At T = 2 SmolLM2's top 64 tokens hold most of the mass; with k =
/// the vocabulary the cache gives exactly the on-the-fly loss (a test checks it).
///
/// The file: one JSON header line (`Header`), then every sequence's tokens (Int32, so that a
/// run reading other tokens is refused, not silently misled), then for every position k ids
/// (Int32) and k logits (Float32), largest first, all little-endian. Written atomically.
public struct TeacherLogitCache: Sendable {
    public struct Header: Codable, Sendable, Equatable {
        public var format = "compression-hub teacher top-k v1"
        public let teacherSHA256: SHA256Digest
        public let k: Int
        /// Each sequence's length in tokens; a sequence of n tokens has n − 1 positions.
        public let lengths: [Int]
        /// sha256 of the tokens as stored (Int32 little-endian).
        public let tokensSHA256: SHA256Digest

        enum CodingKeys: String, CodingKey {
            case format, teacherSHA256 = "teacher_sha256", k, lengths, tokensSHA256 = "tokens_sha256"
        }
    }

    public let header: Header
    let tokens: [Int32]
    /// [positions, k] each, positions in sequence order.
    let ids: [Int32]
    let logits: [Float]
    /// Per sequence, its first token and its first position.
    let tokenOffsets: [Int], rowOffsets: [Int]

    init(header: Header, tokens: [Int32], ids: [Int32], logits: [Float]) {
        self.header = header
        self.tokens = tokens
        self.ids = ids
        self.logits = logits
        var tokenOffsets = [0], rowOffsets = [0]
        for length in header.lengths {
            tokenOffsets.append(tokenOffsets.last! + length)
            rowOffsets.append(rowOffsets.last! + length - 1)
        }
        self.tokenOffsets = tokenOffsets
        self.rowOffsets = rowOffsets
    }

    public var positions: Int { rowOffsets.last! }
    public var sequences: Int { header.lengths.count }

    /// Runs `teacher` over `sequences`, `batch` at a time, and keeps each position's top k.
    public static func build(teacher: LlamaModel, teacherSHA256: SHA256Digest, sequences: [[Int]], k: Int, batch: Int = 4,
                             progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> TeacherLogitCache {
        let vocabulary = teacher.config.vocabSize
        guard k >= 1, k <= vocabulary else { throw TrainingError.invalidDistillation("top-k must lie in 1…\(vocabulary) (got \(k))") }
        guard !sequences.isEmpty, sequences.allSatisfy({ $0.count >= 2 }) else { throw TrainingError.sequenceTooShort }
        if let bad = sequences.joined().first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw TrainingError.tokenOutOfRange(token: bad, vocabularySize: vocabulary)
        }
        let head = teacher.weights.head, width = head.columns
        var ids: [Int32] = [], logits: [Float] = []
        ids.reserveCapacity(sequences.reduce(0) { $0 + $1.count - 1 } * k)
        logits.reserveCapacity(ids.capacity)
        for first in stride(from: 0, to: sequences.count, by: batch) {
            let members = Array(sequences[first ..< min(first + batch, sequences.count)])
            let hidden = try teacher.forwardPacked(members)
            var start = 0
            for sequence in members {
                // Every position but the last predicts a next token.
                let rows = sequence.count - 1
                var row = [Float](repeating: 0, count: rows * vocabulary)
                TrainingKernels.linear(hidden.pointer + start * width, head.data, &row, rows: rows, inputs: width, outputs: vocabulary)
                for r in 0 ..< rows {
                    for index in Self.largest(row, offset: r * vocabulary, count: vocabulary, k: k) {
                        ids.append(Int32(index))
                        logits.append(row[r * vocabulary + index])
                    }
                }
                start += sequence.count
            }
            progress(min(first + batch, sequences.count), sequences.count)
        }
        let tokens = sequences.joined().map { Int32($0) }
        let header = Header(teacherSHA256: teacherSHA256, k: k, lengths: sequences.map(\.count), tokensSHA256: Self.digest(tokens))
        return TeacherLogitCache(header: header, tokens: tokens, ids: ids, logits: logits)
    }

    /// Indices of the k largest of values[offset ..< offset + count], largest first (ties: the lower index).
    static func largest(_ values: [Float], offset: Int, count: Int, k: Int) -> [Int] {
        // A min-heap of the k best so far: one comparison for most of a 49k vocabulary.
        var heap: [(value: Float, index: Int)] = []
        heap.reserveCapacity(k)
        func worse(_ a: (value: Float, index: Int), _ b: (value: Float, index: Int)) -> Bool {
            a.value < b.value || (a.value == b.value && a.index > b.index)
        }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count, worse(heap[l], heap[m]) { m = l }
                if r < heap.count, worse(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for index in 0 ..< count {
            let item = (value: values[offset + index], index: index)
            if heap.count < k {
                heap.append(item)
                var i = heap.count - 1
                while i > 0, worse(heap[i], heap[(i - 1) / 2]) { heap.swapAt(i, (i - 1) / 2); i = (i - 1) / 2 }
            } else if worse(heap[0], item) {
                heap[0] = item
                siftDown(0)
            }
        }
        return heap.sorted { worse($1, $0) }.map(\.index)
    }

    static func digest(_ tokens: [Int32]) -> SHA256Digest {
        SHA256Digest.of(tokens.map(\.littleEndian).withUnsafeBufferPointer { Data(buffer: $0) })
    }

    /// The ids and logits of sequences `first ..< first + sequences.count`, which must be
    /// exactly the tokens the cache was built on.
    func rows(first: Int, matching sequences: [[Int]]) throws -> (ids: ArraySlice<Int32>, logits: ArraySlice<Float>) {
        let last = first + sequences.count
        guard first >= 0, last <= self.sequences else {
            throw TrainingError.invalidDistillation("the teacher cache holds \(self.sequences) sequences; this batch reads \(first)..<\(last)")
        }
        for (offset, sequence) in sequences.enumerated() {
            let n = first + offset
            let stored = tokens[tokenOffsets[n] ..< tokenOffsets[n + 1]]
            guard stored.count == sequence.count, zip(stored, sequence).allSatisfy({ Int($0) == $1 }) else {
                throw TrainingError.invalidDistillation("sequence \(n) differs from the tokens the teacher cache was built on")
            }
        }
        let k = header.k
        return (ids[rowOffsets[first] * k ..< rowOffsets[last] * k], logits[rowOffsets[first] * k ..< rowOffsets[last] * k])
    }

    /// Whether the cache was built by this teacher on this run's sequences: `count` sequences
    /// of `length` tokens from the start of `stream`.
    public func matches(teacherSHA256: SHA256Digest, stream: [Int], sequences count: Int, length: Int) -> Bool {
        guard header.teacherSHA256 == teacherSHA256, header.lengths.count >= count, stream.count >= count * length,
              header.lengths.prefix(count).allSatisfy({ $0 == length }) else { return false }
        return zip(tokens.prefix(count * length), stream.prefix(count * length)).allSatisfy { Int($0) == $1 }
    }

    public func write(to url: URL) throws {
        var data = Data(try JSONEncoder().encode(header))
        data.append(0x0a)
        for part in [tokens.map(\.littleEndian), ids.map(\.littleEndian)] { part.withUnsafeBufferPointer { data.append(Data(buffer: $0)) } }
        logits.map(\.bitPattern.littleEndian).withUnsafeBufferPointer { data.append(Data(buffer: $0)) }
        try AtomicFile.write(data, to: url)
    }

    public static func load(from url: URL) throws -> TeacherLogitCache {
        let data = try Data(contentsOf: url, options: .mappedIfSafe)
        guard let newline = data.firstIndex(of: 0x0a), let header = try? JSONDecoder().decode(Header.self, from: data[data.startIndex ..< newline]),
              header.format == Header(teacherSHA256: header.teacherSHA256, k: 1, lengths: [], tokensSHA256: header.tokensSHA256).format else {
            throw TrainingError.invalidDistillation("\(url.path) is not a teacher cache")
        }
        let tokenCount = header.lengths.reduce(0, +), positions = header.lengths.reduce(0) { $0 + $1 - 1 } * header.k
        let body = data[(newline + 1)...]
        guard body.count == 4 * (tokenCount + 2 * positions) else {
            throw TrainingError.invalidDistillation("\(url.path) is truncated: \(body.count) bytes after its header, \(4 * (tokenCount + 2 * positions)) expected")
        }
        func int32s(_ range: Range<Int>) -> [Int32] {
            body.withUnsafeBytes { raw in (range.lowerBound ..< range.upperBound).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) } }
        }
        let tokens = int32s(0 ..< tokenCount)
        guard Self.digest(tokens) == header.tokensSHA256 else { throw TrainingError.invalidDistillation("\(url.path): its tokens do not match its header's sha256") }
        let ids = int32s(tokenCount ..< tokenCount + positions)
        let logits = int32s(tokenCount + positions ..< tokenCount + 2 * positions).map { Float(bitPattern: UInt32(bitPattern: $0)) }
        return TeacherLogitCache(header: header, tokens: tokens, ids: ids, logits: logits)
    }
}
