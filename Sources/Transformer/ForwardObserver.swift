/// Sees the activations of a forward pass as it runs: what calibration-based compression
/// measures (block influence, channel and head importance). Pointers are valid only during
/// the call; rows are tokens, back to back.
public protocol ForwardObserver: AnyObject {
    /// The residual stream entering block `layer` ([rows, width]).
    func blockInput(layer: Int, hidden: UnsafePointer<Float>, rows: Int, width: Int)
    /// The residual stream leaving block `layer`.
    func blockOutput(layer: Int, hidden: UnsafePointer<Float>, rows: Int, width: Int)
    /// The heads' outputs side by side, as `o_proj` receives them ([rows, heads × headDim]).
    func attentionOutput(layer: Int, values: UnsafePointer<Float>, rows: Int, width: Int)
    /// The SwiGLU activations, as `down_proj` receives them ([rows, intermediate]).
    func mlpActivation(layer: Int, values: UnsafePointer<Float>, rows: Int, width: Int)
}

extension ForwardObserver {
    public func blockInput(layer: Int, hidden: UnsafePointer<Float>, rows: Int, width: Int) {}
    public func blockOutput(layer: Int, hidden: UnsafePointer<Float>, rows: Int, width: Int) {}
    public func attentionOutput(layer: Int, values: UnsafePointer<Float>, rows: Int, width: Int) {}
    public func mlpActivation(layer: Int, values: UnsafePointer<Float>, rows: Int, width: Int) {}
}
