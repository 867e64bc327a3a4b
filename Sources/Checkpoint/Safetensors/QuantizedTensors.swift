import Foundation

/// GGML-quantized matrices inside a safetensors file: how a quantized variant
/// (`hubctl quantize`) stores its weights so that the runtime decodes from the blocks as they
/// lie in the memory mapping.
///
/// The file's `__metadata__` names the type under `hub.quantization` (`q8_0` or `q4_0`), and
/// under `hub.quantization.overrides` a JSON object of tensors stored in another type (a Q4_0
/// model keeps its output matrix in Q8_0, as llama.cpp keeps it in Q6_K). A quantized matrix of
/// logical shape [rows, columns] is a `U8` tensor of shape [rows, columns / 32 × bytes per
/// block] holding GGML's blocks row by row, byte for byte what the `gguf` package writes
/// (`GGMLQuantizer`). Everything else (norms, and matrices whose rows are not a whole number of
/// blocks) stays a float tensor.
public enum QuantizedTensors {
    public static let metadataKey = "hub.quantization"
    public static let overridesKey = "hub.quantization.overrides"
    /// The block types the runtime multiplies with.
    public static let supported: [GGMLType] = [.q8_0, .q4_0]

    /// The types of one file's quantized tensors.
    public struct Layout: Sendable, Equatable {
        /// The type the model was quantized to.
        public let type: GGMLType
        /// Tensors stored in another type.
        public let overrides: [String: GGMLType]

        public init(type: GGMLType, overrides: [String: GGMLType] = [:]) {
            self.type = type
            self.overrides = overrides
        }

        public func type(of tensor: String) -> GGMLType { overrides[tensor] ?? type }

        /// The `__metadata__` entries that describe this layout.
        public var metadata: [String: String] {
            var entries = [metadataKey: name(of: type)]
            if !overrides.isEmpty {
                let object = overrides.mapValues { name(of: $0) }
                let json = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                entries[overridesKey] = String(decoding: json, as: UTF8.self)
            }
            return entries
        }
    }

    /// The type a user or a record names: `q8_0`, `q4_0` (any case).
    public static func type(named name: String) -> GGMLType? {
        supported.first { $0.description.lowercased() == name.lowercased() }
    }

    /// The name records and metadata use for `type`.
    public static func name(of type: GGMLType) -> String { type.description.lowercased() }

    /// The file's quantized layout, or nil for a plain float checkpoint; every U8 tensor is
    /// checked to be rows of whole blocks of its type.
    public static func layout(of file: SafetensorsFile) throws(SafetensorsError) -> Layout? {
        guard let typeName = file.metadata[metadataKey] else {
            if let entry = file.entries.first(where: { $0.dtype == .u8 }) {
                throw .invalidQuantization(path: file.path, reason: "tensor '\(entry.name)' is U8 but the file names no \(metadataKey)")
            }
            return nil
        }
        func parse(_ name: String) throws(SafetensorsError) -> GGMLType {
            guard let found = QuantizedTensors.type(named: name) else {
                throw .invalidQuantization(path: file.path, reason: "type '\(name)'; supported: \(supported.map(QuantizedTensors.name(of:)).joined(separator: ", "))")
            }
            return found
        }
        let type = try parse(typeName)
        var overrides: [String: GGMLType] = [:]
        if let text = file.metadata[overridesKey] {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: String] else {
                throw .invalidQuantization(path: file.path, reason: "\(overridesKey) is not a JSON object of tensor names to types")
            }
            for (tensor, name) in object { overrides[tensor] = try parse(name) }
        }
        let layout = Layout(type: type, overrides: overrides)
        for entry in file.entries where entry.dtype == .u8 {
            let blockType = layout.type(of: entry.name)
            guard entry.shape.count == 2, entry.shape[1] > 0, entry.shape[1] % blockType.bytesPerBlock == 0 else {
                throw .invalidQuantization(path: file.path, reason: "tensor '\(entry.name)' of shape \(entry.shape) is not rows of whole \(blockType) blocks "
                                           + "(\(blockType.bytesPerBlock) bytes each)")
            }
        }
        if let stray = overrides.keys.sorted().first(where: { file[$0]?.dtype != .u8 }) {
            throw .invalidQuantization(path: file.path, reason: "\(overridesKey) names '\(stray)', which is not a U8 tensor of the file")
        }
        return layout
    }

    /// The shape a tensor has as a matrix of weights: a quantized one's [rows, columns].
    public static func logicalShape(of entry: SafetensorsEntry, layout: Layout?) -> [Int] {
        guard let layout, entry.dtype == .u8, entry.shape.count == 2 else { return entry.shape }
        let type = layout.type(of: entry.name)
        return [entry.shape[0], entry.shape[1] / type.bytesPerBlock * type.blockSize]
    }

    /// Every tensor's name and logical shape: what parameter counts are taken from.
    public static func logicalShapes(of file: SafetensorsFile) throws(SafetensorsError) -> [(name: String, shape: [Int])] {
        let layout = try layout(of: file)
        return file.entries.map { ($0.name, logicalShape(of: $0, layout: layout)) }
    }
}
