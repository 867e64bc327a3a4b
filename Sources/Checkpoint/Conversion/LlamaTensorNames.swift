/// Maps llama.cpp's tensor names (`blk.3.attn_q.weight`) to Hugging Face's
/// (`model.layers.3.self_attn.q_proj.weight`), and says which rows llama.cpp permuted.
enum LlamaTensorNames {
    enum RotaryPermutation { case none, queries, keys }

    static let global: [String: String] = [
        "token_embd.weight": "model.embed_tokens.weight",
        "output_norm.weight": "model.norm.weight",
        "output.weight": "lm_head.weight",
    ]

    static let perBlock: [String: (name: String, permutation: RotaryPermutation)] = [
        "attn_norm.weight": ("input_layernorm.weight", .none),
        "attn_q.weight": ("self_attn.q_proj.weight", .queries),
        "attn_k.weight": ("self_attn.k_proj.weight", .keys),
        "attn_v.weight": ("self_attn.v_proj.weight", .none),
        "attn_output.weight": ("self_attn.o_proj.weight", .none),
        "ffn_norm.weight": ("post_attention_layernorm.weight", .none),
        "ffn_gate.weight": ("mlp.gate_proj.weight", .none),
        "ffn_up.weight": ("mlp.up_proj.weight", .none),
        "ffn_down.weight": ("mlp.down_proj.weight", .none),
    ]

    /// The Hugging Face name and permutation of a GGUF tensor, or nil if it has no counterpart.
    static func huggingFace(_ ggufName: String) -> (name: String, permutation: RotaryPermutation)? {
        if let name = global[ggufName] { return (name, .none) }
        let parts = ggufName.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", let block = Int(parts[1]), let entry = perBlock[String(parts[2])] else { return nil }
        return ("model.layers.\(block).\(entry.name)", entry.permutation)
    }

    /// Moves the rows of a Q or K projection ([heads·headDim, inputs], row-major) between
    /// llama.cpp's rotary layout and Hugging Face's: `toLlamaCpp` false undoes llama.cpp's
    /// permutation (convert), true applies it (export-gguf).
    ///
    /// llama.cpp interleaves the two rotary halves of each head (row 2i+j holds what was
    /// row j·headDim/2 + i), to suit its rotate-adjacent-pairs rope; Hugging Face rotates halves.
    static func reorderRotary(_ source: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>,
                              heads: Int, headDim: Int, columns: Int, toLlamaCpp: Bool) {
        reorderRotaryRows(UnsafeRawPointer(source), into: UnsafeMutableRawPointer(output), heads: heads, headDim: headDim,
                          rowBytes: columns * MemoryLayout<Float>.stride, toLlamaCpp: toLlamaCpp)
    }

    /// The same reordering on rows of any encoding, `rowBytes` each: a row of Q8_0 or Q4_0
    /// blocks moves whole, so quantized projections are reordered without decoding them.
    static func reorderRotaryRows(_ source: UnsafeRawPointer, into output: UnsafeMutableRawPointer,
                                  heads: Int, headDim: Int, rowBytes: Int, toLlamaCpp: Bool) {
        let half = headDim / 2
        for h in 0 ..< heads {
            for i in 0 ..< half {
                for j in 0 ..< 2 {
                    let interleaved = (h * headDim + 2 * i + j) * rowBytes, halves = (h * headDim + j * half + i) * rowBytes
                    let (from, to) = toLlamaCpp ? (halves, interleaved) : (interleaved, halves)
                    (output + to).copyMemory(from: source + from, byteCount: rowBytes)
                }
            }
        }
    }
}
