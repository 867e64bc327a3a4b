import COpenBLAS
import Checkpoint
import Foundation
import Transformer

/// One forward and backward pass of a LLaMA-family model over a batch of token sequences,
/// written straight from the equations the runtime computes: token embedding, blocks of
/// RMSNorm → rotary grouped-query attention → RMSNorm → SwiGLU (each with its residual, or a
/// shortcut projection where a compressed block changes the residual's width; either
/// sublayer may be absent), final RMSNorm, tied or untied head, next-token cross-entropy.
///
/// Every activation the backward pass reads is kept from the forward pass rather than
/// recomputed: for SmolLM2-135M that is about 34 KB a token a block plus the attention
/// probabilities (T² per head), 1.3 GB for 4 sequences of 256 tokens, well inside this
/// machine's memory, and recomputation would cost a third more time per step.
public final class LanguageModelPass {
    public let parameters: TrainableParameters
    private let rotary: [Int: RotaryEmbedding]
    private let epsilon: Float

    public init(parameters: TrainableParameters) throws {
        self.parameters = parameters
        rotary = try RotaryEmbedding.tables(for: parameters.config)
        epsilon = Float(parameters.config.rmsNormEps)
    }

    /// Distillation from a teacher (the parent model, run by the runtime): the loss becomes
    /// (1 − weight)·CE + weight·T²·KL(p_teacher,T ‖ p_student,T), where p·,T = softmax(logits / T).
    /// The T² keeps the soft term's gradient on the scale of the hard one (Hinton et al.).
    ///
    /// The teacher's logits come from running it on the batch, or from a `TeacherLogitCache`
    /// of its top k (then the KL is taken over k + 1 classes: the teacher's k tokens and the
    /// rest of the vocabulary as one, whose teacher mass the cache's log-partition gives).
    public struct Distillation {
        public enum Source {
            case model(LlamaModel)
            case topK(TeacherLogitCache)
        }

        public let source: Source
        public let weight: Double
        public let temperature: Double

        public init(teacher: LlamaModel, weight: Double = 0.5, temperature: Double = 2) throws {
            try self.init(source: .model(teacher), weight: weight, temperature: temperature)
        }

        /// Distils at the temperature the cache's log-partitions were taken at.
        public init(cache: TeacherLogitCache, weight: Double = 0.5) throws {
            try self.init(source: .topK(cache), weight: weight, temperature: cache.header.temperature)
        }

        init(source: Source, weight: Double, temperature: Double) throws {
            guard (0 ... 1).contains(weight), temperature > 0 else {
                throw TrainingError.invalidDistillation("weight must lie in [0, 1] and temperature be positive (got \(weight), \(temperature))")
            }
            self.source = source
            self.weight = weight
            self.temperature = temperature
        }
    }

    /// What the loss reads of the teacher for a batch: its final hidden states (logits are
    /// made from them a chunk at a time), or each position's cached top k.
    enum TeacherRows {
        case hidden(FloatBuffer, head: Matrix)
        case topK(ids: ArraySlice<Int32>, logits: ArraySlice<Float>, logPartitions: ArraySlice<Float>, k: Int)
    }

    public struct Result: Sendable {
        /// Mean next-token cross-entropy over every token after its sequence's first, in nats.
        public let loss: Double
        public let tokens: Int
        /// ∂loss/∂parameter, by parameter name (nil when only the loss was asked for).
        public let gradients: [String: [Float]]?
    }

    /// The loss of the batch, and its gradients when `backward` is set. With a cached teacher,
    /// `firstSequence` is the batch's first sequence's index among those the cache was built on.
    public func run(_ sequences: [[Int]], backward: Bool = true, distillation: Distillation? = nil, firstSequence: Int = 0) throws -> Result {
        guard !sequences.isEmpty, sequences.allSatisfy({ $0.count >= 2 }) else { throw TrainingError.sequenceTooShort }
        let vocabulary = parameters.config.vocabSize
        if let bad = sequences.joined().first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw TrainingError.tokenOutOfRange(token: bad, vocabularySize: vocabulary)
        }
        var teacher: (rows: TeacherRows, settings: Distillation)?
        switch distillation?.source {
        case .model(let model)?:
            guard model.config.vocabSize == vocabulary else {
                throw TrainingError.invalidDistillation("the teacher's vocabulary (\(model.config.vocabSize)) differs from the student's (\(vocabulary))")
            }
            teacher = (.hidden(try model.forwardPacked(sequences), head: model.weights.head), distillation!)
        case .topK(let cache)?:
            let (ids, logits, logPartitions) = try cache.rows(first: firstSequence, matching: sequences)
            if let bad = ids.first(where: { Int($0) >= vocabulary }) {
                throw TrainingError.invalidDistillation("the teacher cache names token \(bad), outside the student's vocabulary (0..<\(vocabulary))")
            }
            teacher = (.topK(ids: ids, logits: logits, logPartitions: logPartitions, k: cache.header.k), distillation!)
        case nil: break
        }
        return pass(sequences, backward: backward, teacher: teacher)
    }

    private func p(_ name: String) -> [Float] { parameters.values[name]! }

    /// What one block's forward pass keeps for its backward pass.
    private struct BlockTape {
        var input: [Float] = []
        var normed1: [Float] = [], inverse1: [Float] = []
        var q: [Float] = [], k: [Float] = [], v: [Float] = []
        var probabilities: [Float] = []
        var heads: [Float] = []
        var middle: [Float] = []
        var normed2: [Float] = [], inverse2: [Float] = []
        var gate: [Float] = [], up: [Float] = [], hidden: [Float] = []
    }

    private func pass(_ sequences: [[Int]], backward: Bool, teacher: (rows: TeacherRows, settings: Distillation)?) -> Result {
        let config = parameters.config
        let shapes = config.layerShapes
        let tokens = sequences.flatMap { $0 }
        let rows = tokens.count
        var starts: [Int] = [], offset = 0
        for sequence in sequences { starts.append(offset); offset += sequence.count }

        // Embedding.
        let embedding = p("model.embed_tokens.weight")
        let width0 = config.embeddingWidth
        var x = [Float](repeating: 0, count: rows * width0)
        for (r, token) in tokens.enumerated() {
            for c in 0 ..< width0 { x[r * width0 + c] = embedding[token * width0 + c] }
        }

        // Blocks.
        var tapes: [BlockTape] = []
        for (layer, shape) in shapes.enumerated() {
            var tape = BlockTape()
            tape.input = x
            x = forwardBlock(layer, shape, x, sequences: sequences, starts: starts, rows: rows, tape: &tape)
            tapes.append(backward ? tape : BlockTape())
        }

        // Final norm, head, cross-entropy.
        let finalWidth = config.finalWidth
        var normed = [Float](repeating: 0, count: rows * finalWidth)
        let finalNorm = p("model.norm.weight")
        let finalInverse = TrainingKernels.rmsNorm(x, finalNorm, &normed, rows: rows, width: finalWidth, epsilon: epsilon)
        var targets: [(row: Int, token: Int)] = []
        for (s, sequence) in sequences.enumerated() {
            for i in 0 ..< sequence.count - 1 { targets.append((starts[s] + i, sequence[i + 1])) }
        }
        var gradients = backward ? parameters.zeros() : [:]
        var dNormed = [Float](repeating: 0, count: backward ? rows * finalWidth : 0)
        let loss = crossEntropy(normed, width: finalWidth, targets: targets, teacher: teacher, dNormed: &dNormed, gradients: &gradients,
                                backward: backward)
        guard backward else { return Result(loss: loss, tokens: targets.count, gradients: nil) }

        var dx = [Float](repeating: 0, count: rows * finalWidth)
        TrainingKernels.rmsNormBackward(dNormed, x, finalNorm, inverse: finalInverse, dx: &dx, dg: &gradients["model.norm.weight"]!,
                                        rows: rows, width: finalWidth)
        for (layer, shape) in shapes.enumerated().reversed() {
            dx = backwardBlock(layer, shape, dx, sequences: sequences, starts: starts, rows: rows, tape: tapes[layer], gradients: &gradients)
            tapes[layer] = BlockTape()
        }
        for (r, token) in tokens.enumerated() {
            for c in 0 ..< width0 { gradients["model.embed_tokens.weight"]![token * width0 + c] += dx[r * width0 + c] }
        }
        return Result(loss: loss, tokens: targets.count, gradients: gradients)
    }

    // MARK: Cross-entropy

    /// Mean −log p(target) over `targets` (mixed with the distillation term when a teacher is
    /// given); with `backward`, ∂loss/∂normed into `dNormed` and ∂loss/∂head into the
    /// gradients. Logits are materialised 256 rows at a time (50 MB for a 49k vocabulary): the
    /// head's products run near BLAS's peak from about 256 rows, and the head's gradient, a
    /// vocabulary × width sum, is read and written once per chunk.
    private func crossEntropy(_ normed: [Float], width: Int, targets: [(row: Int, token: Int)],
                              teacher: (rows: TeacherRows, settings: Distillation)?, dNormed: inout [Float],
                              gradients: inout [String: [Float]], backward: Bool) -> Double {
        let head = p(parameters.headName)
        let vocabulary = parameters.config.vocabSize
        let chunk = 256
        var total = 0.0
        let scale = 1 / Float(targets.count)
        for first in stride(from: 0, to: targets.count, by: chunk) {
            let part = targets[first ..< min(first + chunk, targets.count)]
            var input = [Float](repeating: 0, count: part.count * width)
            for (i, target) in part.enumerated() {
                for c in 0 ..< width { input[i * width + c] = normed[target.row * width + c] }
            }
            var logits = [Float](repeating: 0, count: part.count * vocabulary)
            TrainingKernels.linear(input, head, &logits, rows: part.count, inputs: width, outputs: vocabulary)
            // The teacher's full logits [part, vocabulary], or its top k [part, k] with their ids.
            var teacherLogits: [Float] = [], teacherIDs: [Int32] = [], teacherPartitions: [Float] = [], k = 0
            switch teacher?.rows {
            case .hidden(let hidden, let head)?:
                let teacherWidth = head.columns
                var rows = [Float](repeating: 0, count: part.count * teacherWidth)
                for (i, target) in part.enumerated() {
                    for c in 0 ..< teacherWidth { rows[i * teacherWidth + c] = hidden.pointer[target.row * teacherWidth + c] }
                }
                teacherLogits = [Float](repeating: 0, count: part.count * vocabulary)
                TrainingKernels.linear(rows, head.data, &teacherLogits, rows: part.count, inputs: teacherWidth, outputs: vocabulary)
            case .topK(let ids, let logits, let logPartitions, let size)?:
                // Targets are the batch's positions in order, as the cache keeps them.
                k = size
                let range = (ids.startIndex + first * k) ..< (ids.startIndex + (first + part.count) * k)
                teacherIDs = Array(ids[range])
                teacherLogits = Array(logits[(logits.startIndex + first * k) ..< (logits.startIndex + (first + part.count) * k)])
                teacherPartitions = Array(logPartitions[(logPartitions.startIndex + first) ..< (logPartitions.startIndex + first + part.count)])
            case nil: break
            }
            let weight = teacher?.settings.weight ?? 0, temperature = teacher?.settings.temperature ?? 1
            let distilling = teacher != nil
            // Rows are independent: each computes its loss into its own slot and overwrites its
            // own logits with ∂loss/∂logit; the slots are summed in row order afterwards.
            var rowLosses = [Double](repeating: 0, count: part.count)
            let tokens = part.map(\.token)
            logits.withUnsafeMutableBufferPointer { logitsBuffer in teacherLogits.withUnsafeBufferPointer { teacherBuffer in
            rowLosses.withUnsafeMutableBufferPointer { lossBuffer in teacherIDs.withUnsafeBufferPointer { idBuffer in
            teacherPartitions.withUnsafeBufferPointer { partitionBuffer in
                nonisolated(unsafe) let (x0, t0, losses, id0) = (logitsBuffer.baseAddress!, teacherBuffer.baseAddress, lossBuffer.baseAddress!, idBuffer.baseAddress)
                nonisolated(unsafe) let z0 = partitionBuffer.baseAddress
                Parallel.rows(part.count, cost: part.count * vocabulary) { i in
                    let x = x0 + i * vocabulary, target = tokens[i]
                    let hard = TrainingKernels.logSumExp(x, count: vocabulary, temperature: 1)
                    var loss = (1 - weight) * (hard - Double(x[target]))
                    // The soft terms' normalizers at temperature T, for the loss and its gradient.
                    let inverse = Float(1 / temperature)
                    var softF: Float = 0, teacherF: Float = 0
                    // Top k: log(teacher's rest mass / student's rest mass), which scales the
                    // student's own tail into the rest class's target (−∞ when there is no rest).
                    var logRestRatio = -Float.infinity
                    if distilling, k > 0, let t0, let id0, let z0 {
                        // KL over the teacher's k tokens and one class for every other token.
                        let t = t0 + i * k, ids = id0 + i * k
                        // One pass gives the student's normalizer at T and, from the same float
                        // terms, its rest mass: the sum over every token less the sum over the k
                        // (the same terms, so the difference does not cancel to noise).
                        let (top, studentAll) = TrainingKernels.shiftedExpSum(x, count: vocabulary, temperature: temperature)
                        var studentTop = 0.0
                        softF = Float(Double(top) + log(studentAll))
                        teacherF = z0[i]
                        var kl = 0.0, teacherTop = 0.0
                        for j in 0 ..< k {
                            let scaled = x[Int(ids[j])] * inverse
                            let logTeacher = t[j] * inverse - teacherF, logStudent = scaled - softF
                            kl += Double(expf(logTeacher) * (logTeacher - logStudent))
                            teacherTop += Double(expf(logTeacher))
                            studentTop += Double(Kernels.exp(scaled - top))  // the bits of studentAll's term
                        }
                        let teacherRest = k < vocabulary ? max(0, 1 - teacherTop) : 0
                        if teacherRest > 0 {
                            var logStudentRest = log(max(studentAll - studentTop, 0) / studentAll)
                            if !(logStudentRest > -60) {
                                // The tail's float terms underflow: sum it again in log space, so
                                // that the rest agrees with the tail tokens' own log-probabilities.
                                let topIDs = Set((0 ..< k).map { Int(ids[$0]) })
                                var tailTop = -Float.infinity
                                for j in 0 ..< vocabulary where !topIDs.contains(j) { tailTop = max(tailTop, x[j] * inverse) }
                                var sum = 0.0
                                for j in 0 ..< vocabulary where !topIDs.contains(j) { sum += exp(Double(x[j] * inverse - tailTop)) }
                                logStudentRest = Double(tailTop) + log(sum) - (Double(top) + log(studentAll))
                            }
                            kl += teacherRest * (log(teacherRest) - logStudentRest)
                            logRestRatio = Float(log(teacherRest) - logStudentRest)
                        }
                        loss += weight * temperature * temperature * kl
                    } else if distilling, let t0 {
                        let t = t0 + i * vocabulary
                        softF = Float(TrainingKernels.logSumExp(x, count: vocabulary, temperature: temperature))
                        teacherF = Float(TrainingKernels.logSumExp(t, count: vocabulary, temperature: temperature))
                        var kl = 0.0
                        for j in 0 ..< vocabulary {
                            let logTeacher = t[j] * inverse - teacherF
                            kl += Double(expf(logTeacher) * (logTeacher - (x[j] * inverse - softF)))
                        }
                        loss += weight * temperature * temperature * kl
                    }
                    losses[i] = loss
                    guard backward else { return }
                    // ∂/∂logit: (1 − w)(softmax − onehot) + w·T·(softmax_T − teacher softmax_T), over the count.
                    let hardF = Float(hard), hardWeight = Float(1 - weight) * scale
                    if distilling, k > 0, let t0, let id0 {
                        // The soft target is the teacher's probability on its k tokens, and on any
                        // other token the student's own probability scaled by the rest ratio. Every
                        // token first takes the tail's form; the k are then written afresh from
                        // their own logits (p·ratio can overflow there, where p is near 1).
                        let t = t0 + i * k, ids = id0 + i * k
                        let softWeight = Float(weight * temperature) * scale
                        let topValues = (0 ..< k).map { x[Int(ids[$0])] }
                        if logRestRatio < 80 {
                            // The ratio fits a Float: one exp per token, p·(1 − ratio).
                            let keep = 1 - expf(logRestRatio)
                            TrainingKernels.softmaxGradient(x, count: vocabulary, hardScale: hardWeight, hardShift: hardF,
                                                            softScale: softWeight * keep, inverse: inverse, softShift: softF)
                        } else {
                            // A student whose rest is vanishingly small: the ratio would overflow a
                            // Float while p·ratio on a tail token need not, so it stays in log space.
                            for j in 0 ..< vocabulary {
                                let value = x[j], logStudent = value * inverse - softF
                                x[j] = hardWeight * expf(value - hardF) + softWeight * (expf(logStudent) - expf(logStudent + logRestRatio))
                            }
                        }
                        for j in 0 ..< k {
                            let value = topValues[j]
                            x[Int(ids[j])] = hardWeight * expf(value - hardF) + softWeight * (expf(value * inverse - softF) - expf(t[j] * inverse - teacherF))
                        }
                    } else if distilling, let t0 {
                        let t = t0 + i * vocabulary
                        let softWeight = Float(weight * temperature) * scale
                        for j in 0 ..< vocabulary {
                            let value = x[j]
                            x[j] = hardWeight * expf(value - hardF) + softWeight * (expf(value * inverse - softF) - expf(t[j] * inverse - teacherF))
                        }
                    } else {
                        TrainingKernels.softmaxGradient(x, count: vocabulary, hardScale: hardWeight, hardShift: hardF)
                    }
                    x[target] -= hardWeight
                }
            } } } } }
            total += rowLosses.reduce(0, +)
            guard backward else { continue }
            var dInput = [Float](repeating: 0, count: part.count * width)
            TrainingKernels.linearBackward(logits, input, head, dx: &dInput, dw: &gradients[parameters.headName]!,
                                           rows: part.count, inputs: width, outputs: vocabulary)
            for (i, target) in part.enumerated() {
                for c in 0 ..< width { dNormed[target.row * width + c] += dInput[i * width + c] }
            }
        }
        return total / Double(targets.count)
    }

    // MARK: Blocks

    private func forwardBlock(_ layer: Int, _ shape: LayerShape, _ x: [Float], sequences: [[Int]], starts: [Int], rows: Int,
                              tape: inout BlockTape) -> [Float] {
        let prefix = "model.layers.\(layer)."
        let din = shape.inputWidth, dattn = shape.attentionOutputWidth, dout = shape.outputWidth
        // Attention sublayer: middle = shortcut(x) + o_proj(attention(norm(x))).
        var middle = [Float](repeating: 0, count: rows * dattn)
        if shape.attentionShortcut {
            TrainingKernels.linear(x, p(prefix + "self_attn.shortcut.weight"), &middle, rows: rows, inputs: din, outputs: dattn)
        } else {
            middle = x
        }
        if shape.attentionHeads > 0 {
            let hd = shape.headDim, qWidth = shape.attentionHeads * hd, kvWidth = shape.keyValueHeads * hd
            tape.normed1 = [Float](repeating: 0, count: rows * din)
            tape.inverse1 = TrainingKernels.rmsNorm(x, p(prefix + "input_layernorm.weight"), &tape.normed1, rows: rows, width: din, epsilon: epsilon)
            tape.q = [Float](repeating: 0, count: rows * qWidth)
            tape.k = [Float](repeating: 0, count: rows * kvWidth)
            tape.v = [Float](repeating: 0, count: rows * kvWidth)
            TrainingKernels.linear(tape.normed1, p(prefix + "self_attn.q_proj.weight"), &tape.q, rows: rows, inputs: din, outputs: qWidth)
            TrainingKernels.linear(tape.normed1, p(prefix + "self_attn.k_proj.weight"), &tape.k, rows: rows, inputs: din, outputs: kvWidth)
            TrainingKernels.linear(tape.normed1, p(prefix + "self_attn.v_proj.weight"), &tape.v, rows: rows, inputs: din, outputs: kvWidth)
            rotate(&tape.q, heads: shape.attentionHeads, headDim: hd, sequences: sequences, transposed: false)
            rotate(&tape.k, heads: shape.keyValueHeads, headDim: hd, sequences: sequences, transposed: false)
            (tape.heads, tape.probabilities) = attention(shape, q: tape.q, k: tape.k, v: tape.v, sequences: sequences, starts: starts, rows: rows)
            TrainingKernels.linear(tape.heads, p(prefix + "self_attn.o_proj.weight"), &middle, rows: rows, inputs: qWidth, outputs: dattn,
                                   accumulate: true)
        }
        tape.middle = middle
        // MLP sublayer: out = shortcut(middle) + down(silu(gate(norm(middle))) ⊙ up(norm(middle))).
        var out = [Float](repeating: 0, count: rows * dout)
        if shape.mlpShortcut {
            TrainingKernels.linear(middle, p(prefix + "mlp.shortcut.weight"), &out, rows: rows, inputs: dattn, outputs: dout)
        } else {
            out = middle
        }
        if shape.intermediateSize > 0 {
            let inner = shape.intermediateSize
            tape.normed2 = [Float](repeating: 0, count: rows * dattn)
            tape.inverse2 = TrainingKernels.rmsNorm(middle, p(prefix + "post_attention_layernorm.weight"), &tape.normed2, rows: rows,
                                                    width: dattn, epsilon: epsilon)
            tape.gate = [Float](repeating: 0, count: rows * inner)
            tape.up = [Float](repeating: 0, count: rows * inner)
            TrainingKernels.linear(tape.normed2, p(prefix + "mlp.gate_proj.weight"), &tape.gate, rows: rows, inputs: dattn, outputs: inner)
            TrainingKernels.linear(tape.normed2, p(prefix + "mlp.up_proj.weight"), &tape.up, rows: rows, inputs: dattn, outputs: inner)
            tape.hidden = [Float](repeating: 0, count: rows * inner)
            TrainingKernels.swiglu(gate: tape.gate, up: tape.up, hidden: &tape.hidden, count: rows * inner)
            TrainingKernels.linear(tape.hidden, p(prefix + "mlp.down_proj.weight"), &out, rows: rows, inputs: inner, outputs: dout, accumulate: true)
        }
        return out
    }

    private func backwardBlock(_ layer: Int, _ shape: LayerShape, _ dOut: [Float], sequences: [[Int]], starts: [Int], rows: Int,
                               tape: BlockTape, gradients: inout [String: [Float]]) -> [Float] {
        let prefix = "model.layers.\(layer)."
        let din = shape.inputWidth, dattn = shape.attentionOutputWidth, dout = shape.outputWidth
        // MLP sublayer.
        var dMiddle = [Float](repeating: 0, count: rows * dattn)
        if shape.mlpShortcut {
            TrainingKernels.linearBackward(dOut, tape.middle, p(prefix + "mlp.shortcut.weight"), dx: &dMiddle,
                                           dw: &gradients[prefix + "mlp.shortcut.weight"]!, rows: rows, inputs: dattn, outputs: dout)
        } else {
            dMiddle = dOut
        }
        if shape.intermediateSize > 0 {
            let inner = shape.intermediateSize
            var dHidden = [Float](repeating: 0, count: rows * inner)
            TrainingKernels.linearBackward(dOut, tape.hidden, p(prefix + "mlp.down_proj.weight"), dx: &dHidden,
                                           dw: &gradients[prefix + "mlp.down_proj.weight"]!, rows: rows, inputs: inner, outputs: dout)
            var dGate = [Float](repeating: 0, count: rows * inner), dUp = [Float](repeating: 0, count: rows * inner)
            TrainingKernels.swigluBackward(dHidden: dHidden, gate: tape.gate, up: tape.up, dGate: &dGate, dUp: &dUp, count: rows * inner)
            var dNormed = [Float](repeating: 0, count: rows * dattn)
            TrainingKernels.linearBackward(dGate, tape.normed2, p(prefix + "mlp.gate_proj.weight"), dx: &dNormed,
                                           dw: &gradients[prefix + "mlp.gate_proj.weight"]!, rows: rows, inputs: dattn, outputs: inner)
            TrainingKernels.linearBackward(dUp, tape.normed2, p(prefix + "mlp.up_proj.weight"), dx: &dNormed,
                                           dw: &gradients[prefix + "mlp.up_proj.weight"]!, rows: rows, inputs: dattn, outputs: inner)
            TrainingKernels.rmsNormBackward(dNormed, tape.middle, p(prefix + "post_attention_layernorm.weight"), inverse: tape.inverse2,
                                            dx: &dMiddle, dg: &gradients[prefix + "post_attention_layernorm.weight"]!, rows: rows, width: dattn)
        }
        // Attention sublayer.
        var dInput = [Float](repeating: 0, count: rows * din)
        if shape.attentionShortcut {
            TrainingKernels.linearBackward(dMiddle, tape.input, p(prefix + "self_attn.shortcut.weight"), dx: &dInput,
                                           dw: &gradients[prefix + "self_attn.shortcut.weight"]!, rows: rows, inputs: din, outputs: dattn)
        } else {
            dInput = dMiddle
        }
        if shape.attentionHeads > 0 {
            let hd = shape.headDim, qWidth = shape.attentionHeads * hd, kvWidth = shape.keyValueHeads * hd
            var dHeads = [Float](repeating: 0, count: rows * qWidth)
            TrainingKernels.linearBackward(dMiddle, tape.heads, p(prefix + "self_attn.o_proj.weight"), dx: &dHeads,
                                           dw: &gradients[prefix + "self_attn.o_proj.weight"]!, rows: rows, inputs: qWidth, outputs: dattn)
            var (dq, dk, dv) = attentionBackward(shape, dHeads: dHeads, tape: tape, sequences: sequences, starts: starts, rows: rows)
            rotate(&dq, heads: shape.attentionHeads, headDim: hd, sequences: sequences, transposed: true)
            rotate(&dk, heads: shape.keyValueHeads, headDim: hd, sequences: sequences, transposed: true)
            var dNormed = [Float](repeating: 0, count: rows * din)
            for (name, d, width) in [("q_proj", dq, qWidth), ("k_proj", dk, kvWidth), ("v_proj", dv, kvWidth)] {
                TrainingKernels.linearBackward(d, tape.normed1, p(prefix + "self_attn.\(name).weight"), dx: &dNormed,
                                               dw: &gradients[prefix + "self_attn.\(name).weight"]!, rows: rows, inputs: din, outputs: width)
            }
            TrainingKernels.rmsNormBackward(dNormed, tape.input, p(prefix + "input_layernorm.weight"), inverse: tape.inverse1,
                                            dx: &dInput, dg: &gradients[prefix + "input_layernorm.weight"]!, rows: rows, width: din)
        }
        return dInput
    }

    // MARK: Attention

    /// Rotary positions of every row (each sequence from position 0), or their inverse.
    private func rotate(_ values: inout [Float], heads: Int, headDim: Int, sequences: [[Int]], transposed: Bool) {
        let rope = rotary[headDim]!, width = heads * headDim
        let positions = sequences.flatMap { $0.indices }
        values.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let base = buffer.baseAddress!
            Parallel.rows(positions.count, cost: positions.count * width) { row in
                rope.apply(base + row * width, heads: heads, position: positions[row], transposed: transposed)
            }
        }
    }

    /// Causal softmax attention per sequence and head; returns the heads' outputs side by side
    /// [rows, heads × headDim] and every (sequence, head)'s probabilities [T, T], back to back.
    private func attention(_ shape: LayerShape, q: [Float], k: [Float], v: [Float], sequences: [[Int]], starts: [Int],
                           rows: Int) -> ([Float], [Float]) {
        let hd = shape.headDim, heads = shape.attentionHeads, group = heads / shape.keyValueHeads
        let qWidth = heads * hd, kvWidth = shape.keyValueHeads * hd
        let scale = 1 / Float(hd).squareRoot()
        var output = [Float](repeating: 0, count: rows * qWidth)
        var probabilities = [Float](repeating: 0, count: sequences.reduce(0) { $0 + $1.count * $1.count } * heads)
        q.withUnsafeBufferPointer { qb in k.withUnsafeBufferPointer { kb in v.withUnsafeBufferPointer { vb in
        output.withUnsafeMutableBufferPointer { ob in probabilities.withUnsafeMutableBufferPointer { pb in
            var base = 0
            for (s, sequence) in sequences.enumerated() {
                let t = sequence.count, start = starts[s]
                // Every head's scores, then every row's causal softmax on all threads (the
                // rows are independent), then every head's output: one BLAS call at a time,
                // and no core idle through the softmax. The products skip the masked top-right
                // quarter of every T × T matrix (`TrainingKernels.causalScores`).
                nonisolated(unsafe) let block = pb.baseAddress! + base
                for h in 0 ..< heads {
                    let qh = qb.baseAddress! + start * qWidth + h * hd, kg = kb.baseAddress! + start * kvWidth + (h / group) * hd
                    TrainingKernels.causalScores(t: t, k: hd, alpha: scale, qh, qWidth, kg, kvWidth, into: block + h * t * t)
                }
                Parallel.rows(heads * t, cost: heads * t * t) { index in
                    // Row i of head index / t lies at index · t: the heads' T × T blocks are back to back.
                    let i = index % t, row = block + index * t
                    Kernels.softmax(row, count: i + 1)
                    for j in (i + 1) ..< t { row[j] = 0 }
                }
                for h in 0 ..< heads {
                    let vg = vb.baseAddress! + start * kvWidth + (h / group) * hd, oh = ob.baseAddress! + start * qWidth + h * hd
                    TrainingKernels.causalProduct(t: t, n: hd, block + h * t * t, vg, kvWidth, beta: 0, into: oh, qWidth)
                }
                base += t * t * heads
            }
        } } } } }
        return (output, probabilities)
    }

    /// With S = q·kᵀ/√d and P = softmax(S): dv += Pᵀ·dO, dP = dO·vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)),
    /// dq = dS·k/√d, dk += dSᵀ·q/√d (k and v shared by the heads of a group).
    private func attentionBackward(_ shape: LayerShape, dHeads: [Float], tape: BlockTape, sequences: [[Int]], starts: [Int],
                                   rows: Int) -> ([Float], [Float], [Float]) {
        let hd = shape.headDim, heads = shape.attentionHeads, group = heads / shape.keyValueHeads
        let qWidth = heads * hd, kvWidth = shape.keyValueHeads * hd
        let scale = 1 / Float(hd).squareRoot()
        var dq = [Float](repeating: 0, count: rows * qWidth)
        var dk = [Float](repeating: 0, count: rows * kvWidth), dv = [Float](repeating: 0, count: rows * kvWidth)
        tape.probabilities.withUnsafeBufferPointer { pb in dHeads.withUnsafeBufferPointer { ob in
        tape.q.withUnsafeBufferPointer { qb in tape.k.withUnsafeBufferPointer { kb in tape.v.withUnsafeBufferPointer { vb in
        dq.withUnsafeMutableBufferPointer { dqb in dk.withUnsafeMutableBufferPointer { dkb in dv.withUnsafeMutableBufferPointer { dvb in
            var base = 0
            for (s, sequence) in sequences.enumerated() {
                let t = sequence.count, start = starts[s]
                // As in the forward pass: the BLAS calls of every head, the softmax's backward on
                // all threads, then the rest of the BLAS calls. Each head's dv and dk still
                // accumulate in head order, so the sums are those of a head-by-head loop.
                var dScores = [Float](repeating: 0, count: heads * t * t)
                dScores.withUnsafeMutableBufferPointer { db in
                    nonisolated(unsafe) let (block, dBlock) = (pb.baseAddress! + base, db.baseAddress!)
                    for h in 0 ..< heads {
                        let g = h / group
                        let dO = ob.baseAddress! + start * qWidth + h * hd, vg = vb.baseAddress! + start * kvWidth + g * hd
                        TrainingKernels.causalTransposedProduct(t: t, n: hd, block + h * t * t, dO, qWidth,
                                                                into: dvb.baseAddress! + start * kvWidth + g * hd, kvWidth)
                        TrainingKernels.causalScores(t: t, k: hd, dO, qWidth, vg, kvWidth, into: dBlock + h * t * t)
                    }
                    Parallel.rows(heads * t, cost: heads * t * t) { index in
                        let i = index % t, pr = block + index * t, dRow = dBlock + index * t
                        // dS = P ⊙ (dP − Σ dP ⊙ P) over the row's i + 1 visible columns, eight at a time.
                        let visible = i + 1
                        var lanes = SIMD8<Float>(repeating: 0), j = 0
                        while j + 8 <= visible { lanes += Kernels.load(dRow + j) * Kernels.load(pr + j); j += 8 }
                        var dot = lanes.sum()
                        for j in j ..< visible { dot += dRow[j] * pr[j] }
                        j = 0
                        while j + 8 <= visible { Kernels.store(Kernels.load(pr + j) * (Kernels.load(dRow + j) - dot), dRow + j); j += 8 }
                        for j in j ..< visible { dRow[j] = pr[j] * (dRow[j] - dot) }
                        for j in visible ..< t { dRow[j] = 0 }
                    }
                    for h in 0 ..< heads {
                        let g = h / group
                        let qh = qb.baseAddress! + start * qWidth + h * hd, kg = kb.baseAddress! + start * kvWidth + g * hd
                        let dqh = dqb.baseAddress! + start * qWidth + h * hd, dkg = dkb.baseAddress! + start * kvWidth + g * hd
                        let dS = dBlock + h * t * t
                        TrainingKernels.causalProduct(t: t, n: hd, alpha: scale, dS, kg, kvWidth, beta: 1, into: dqh, qWidth)
                        TrainingKernels.causalTransposedProduct(t: t, n: hd, alpha: scale, dS, qh, qWidth, into: dkg, kvWidth)
                    }
                }
                base += t * t * heads
            }
        } } } } } } } }
        return (dq, dk, dv)
    }
}

public enum TrainingError: Error, Equatable, CustomStringConvertible {
    case sequenceTooShort
    case tokenOutOfRange(token: Int, vocabularySize: Int)
    case invalidDistillation(String)

    public var description: String {
        switch self {
        case .sequenceTooShort: "every training sequence needs at least two tokens (one to read, one to predict)"
        case .tokenOutOfRange(let token, let size): "token id \(token) is outside the vocabulary (0..<\(size))"
        case .invalidDistillation(let reason): "distillation cannot run: \(reason)"
        }
    }
}
