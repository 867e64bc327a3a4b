import Foundation
import HubCore
import Transformer

/// The teacher's k largest next-token logits at every position of a run's sequences, computed
/// once and kept on disk, so that distilling students that read the same tokens (every cell of
/// a sweep distils the same parent on the same prefix of the corpus) do not each run the
/// teacher again.
///
/// Each position also keeps the teacher's log-partition over the whole vocabulary at the run's
/// temperature, so the mass outside the top k is known, and distillation compares the two
/// distributions over k + 1 classes: the teacher's k tokens, and "any other token". Without
/// that class (the usual sparse form, renormalising the teacher over its k tokens) the student
/// is pushed to put every bit of its mass on k tokens; at T = 2 SmolLM2's top 32 hold only a
/// fifth of its mass on news (19.6%, measured), and that bias cost most of what distillation
/// won (measured in the README). With k = the vocabulary the cache gives exactly the on-the-fly loss, and a
/// model distilled from its own cache has zero loss and zero gradient (tests check both).
///
/// The file: one JSON header line (`Header`), then every sequence's tokens (Int32, so that a
/// run reading other tokens is refused, not silently misled), then for every position k ids
/// (Int32), then k logits (Float32), largest first, then every position's log-partition
/// (Float32), all little-endian. Written atomically.
public struct TeacherLogitCache: Sendable {
    public struct Header: Codable, Sendable, Equatable {
        public var format = Self.currentFormat
        public let teacherSHA256: SHA256Digest
        public let k: Int
        /// The temperature the log-partitions are taken at: a run distils at this temperature.
        public let temperature: Double
        /// Each sequence's length in tokens; a sequence of n tokens has n − 1 positions.
        public let lengths: [Int]
        /// sha256 of the tokens as stored (Int32 little-endian).
        public let tokensSHA256: SHA256Digest

        static let currentFormat = "compression-hub teacher top-k v2"

        enum CodingKeys: String, CodingKey {
            case format, teacherSHA256 = "teacher_sha256", k, temperature, lengths, tokensSHA256 = "tokens_sha256"
        }
    }

    public let header: Header
    let tokens: [Int32]
    /// [positions, k] each, positions in sequence order.
    let ids: [Int32]
    let logits: [Float]
    /// [positions]: log Σ_v exp(logit_v / T) over the whole vocabulary.
    let logPartitions: [Float]
    /// Per sequence, its first token and its first position.
    let tokenOffsets: [Int], rowOffsets: [Int]

    init(header: Header, tokens: [Int32], ids: [Int32], logits: [Float], logPartitions: [Float]) {
        self.header = header
        self.tokens = tokens
        self.ids = ids
        self.logits = logits
        self.logPartitions = logPartitions
        var tokenOffsets = [0], rowOffsets = [0]
        for length in header.lengths {
            tokenOffsets.append(tokenOffsets.last! + length)
            rowOffsets.append(rowOffsets.last! + length - 1)
        }
        self.tokenOffsets = tokenOffsets
        self.rowOffsets = rowOffsets
    }

    public var positions: Int { rowOffsets.last! }

    /// The teacher's probability mass on its top k at the cache's temperature, averaged over positions.
    public var meanTopMass: Double {
        let k = header.k, inverse = Float(1 / header.temperature)
        var total = 0.0
        for (row, logPartition) in logPartitions.enumerated() {
            for j in 0 ..< k { total += Double(expf(logits[row * k + j] * inverse - logPartition)) }
        }
        return total / Double(max(1, logPartitions.count))
    }
    public var sequences: Int { header.lengths.count }

    /// Runs `teacher` over `sequences`, `batch` at a time, and keeps each position's top k and
    /// its log-partition at `temperature`. `progress` hears the sequences done after every
    /// batch; when `shouldStop` then asks, it throws `FineTuneError.interrupted` at step 0 and
    /// keeps nothing (a million tokens take the teacher half an hour here, so Ctrl-C must not
    /// wait for the end).
    public static func build(teacher: LlamaModel, teacherSHA256: SHA256Digest, sequences: [[Int]], k: Int, temperature: Double = 2,
                             batch: Int = 4, progress: (_ done: Int, _ total: Int) -> Void = { _, _ in },
                             shouldStop: () -> Bool = { false }) throws -> TeacherLogitCache {
        let vocabulary = teacher.config.vocabSize
        guard k >= 1, k <= vocabulary else { throw TrainingError.invalidDistillation("top-k must lie in 1…\(vocabulary) (got \(k))") }
        guard temperature > 0 else { throw TrainingError.invalidDistillation("the temperature must be positive (got \(temperature))") }
        guard !sequences.isEmpty, sequences.allSatisfy({ $0.count >= 2 }) else { throw TrainingError.sequenceTooShort }
        if let bad = sequences.joined().first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw TrainingError.tokenOutOfRange(token: bad, vocabularySize: vocabulary)
        }
        let head = teacher.weights.head, width = head.columns
        var ids: [Int32] = [], logits: [Float] = [], logPartitions: [Float] = []
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
                    logPartitions.append(row.withUnsafeBufferPointer {
                        Float(TrainingKernels.logSumExp($0.baseAddress! + r * vocabulary, count: vocabulary, temperature: temperature))
                    })
                    for index in Self.largest(row, offset: r * vocabulary, count: vocabulary, k: k) {
                        ids.append(Int32(index))
                        logits.append(row[r * vocabulary + index])
                    }
                }
                start += sequence.count
            }
            progress(min(first + batch, sequences.count), sequences.count)
            if shouldStop() { throw FineTuneError.interrupted(step: 0, checkpoint: nil) }
        }
        let tokens = sequences.joined().map { Int32($0) }
        let header = Header(teacherSHA256: teacherSHA256, k: k, temperature: temperature, lengths: sequences.map(\.count),
                            tokensSHA256: Self.digest(tokens))
        return TeacherLogitCache(header: header, tokens: tokens, ids: ids, logits: logits, logPartitions: logPartitions)
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

    /// The first `count` sequences of `length` tokens cut from a stream in order: the rows a
    /// cache is built over, as fine-tuning batches them.
    public static func sequences(of stream: [Int], count: Int, length: Int) -> [[Int]] {
        (0 ..< count).map { Array(stream[($0 * length) ..< (($0 + 1) * length)]) }
    }

    static func digest(_ tokens: [Int32]) -> SHA256Digest {
        SHA256Digest.of(tokens.map(\.littleEndian).withUnsafeBufferPointer { Data(buffer: $0) })
    }

    /// The ids, logits and log-partitions of sequences `first ..< first + sequences.count`, which
    /// must be exactly the tokens the cache was built on.
    func rows(first: Int, matching sequences: [[Int]]) throws -> (ids: ArraySlice<Int32>, logits: ArraySlice<Float>, logPartitions: ArraySlice<Float>) {
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
        return (ids[rowOffsets[first] * k ..< rowOffsets[last] * k], logits[rowOffsets[first] * k ..< rowOffsets[last] * k],
                logPartitions[rowOffsets[first] ..< rowOffsets[last]])
    }

    /// Whether the cache was built by this teacher at this temperature on this run's sequences:
    /// `count` sequences of `length` tokens from the start of `stream`.
    public func matches(teacherSHA256: SHA256Digest, temperature: Double, stream: [Int], sequences count: Int, length: Int) -> Bool {
        guard header.teacherSHA256 == teacherSHA256, header.temperature == temperature, header.lengths.count >= count, stream.count >= count * length,
              header.lengths.prefix(count).allSatisfy({ $0 == length }) else { return false }
        return zip(tokens.prefix(count * length), stream.prefix(count * length)).allSatisfy { Int($0) == $1 }
    }

    public func write(to url: URL) throws {
        var data = Data(try JSONEncoder().encode(header))
        data.append(0x0a)
        for part in [tokens.map(\.littleEndian), ids.map(\.littleEndian)] { part.withUnsafeBufferPointer { data.append(Data(buffer: $0)) } }
        for part in [logits, logPartitions] { part.map(\.bitPattern.littleEndian).withUnsafeBufferPointer { data.append(Data(buffer: $0)) } }
        try AtomicFile.write(data, to: url)
    }

    public static func load(from url: URL) throws -> TeacherLogitCache {
        let data = try Data(contentsOf: url, options: .mappedIfSafe)
        guard let newline = data.firstIndex(of: 0x0a), let header = try? JSONDecoder().decode(Header.self, from: data[data.startIndex ..< newline]),
              header.format == Header.currentFormat else {
            throw TrainingError.invalidDistillation("\(url.path) is not a teacher cache of format \"\(Header.currentFormat)\"")
        }
        let tokenCount = header.lengths.reduce(0, +), rows = header.lengths.reduce(0) { $0 + $1 - 1 }, positions = rows * header.k
        let body = data[(newline + 1)...], expected = 4 * (tokenCount + 2 * positions + rows)
        guard body.count == expected else {
            throw TrainingError.invalidDistillation("\(url.path) is truncated: \(body.count) bytes after its header, \(expected) expected")
        }
        func int32s(_ range: Range<Int>) -> [Int32] {
            body.withUnsafeBytes { raw in (range.lowerBound ..< range.upperBound).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) } }
        }
        let tokens = int32s(0 ..< tokenCount)
        guard Self.digest(tokens) == header.tokensSHA256 else { throw TrainingError.invalidDistillation("\(url.path): its tokens do not match its header's sha256") }
        let ids = int32s(tokenCount ..< tokenCount + positions)
        let floats = int32s(tokenCount + positions ..< tokenCount + 2 * positions + rows).map { Float(bitPattern: UInt32(bitPattern: $0)) }
        return TeacherLogitCache(header: header, tokens: tokens, ids: ids, logits: Array(floats[..<positions]),
                                 logPartitions: Array(floats[positions...]))
    }
}
