import Foundation
import HubCore

/// A tensor to be written: its header entry and a producer that fills its bytes.
public struct PendingTensor {
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]
    /// Fills exactly `byteCount` bytes; called once, in file order, so that only one
    /// tensor's data is held in memory at a time.
    public let produce: (UnsafeMutableRawBufferPointer) throws -> Void

    public init(name: String, dtype: TensorDType, shape: [Int], produce: @escaping (UnsafeMutableRawBufferPointer) throws -> Void) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.produce = produce
    }

    public static func float32(_ name: String, shape: [Int], values: [Float]) -> PendingTensor {
        precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
        return PendingTensor(name: name, dtype: .f32, shape: shape) { buffer in
            values.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
    }

    public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
}

/// Writes safetensors files atomically: the file appears complete under its name, or not at all.
public enum SafetensorsWriter {
    public static func write(_ tensors: [PendingTensor], metadata: [String: String] = [:], to destination: URL) throws {
        var seen = Set<String>()
        var header: [String: Any] = [:]
        var offset = 0
        for tensor in tensors {
            guard seen.insert(tensor.name).inserted, tensor.name != "__metadata__" else { throw SafetensorsError.duplicateTensor(name: tensor.name) }
            header[tensor.name] = ["dtype": tensor.dtype.rawValue, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.byteCount]]
            offset += tensor.byteCount
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var headerData = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        headerData.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - headerData.count % 8) % 8))

        try AtomicFile.write(to: destination) { handle in
            var length = UInt64(headerData.count).littleEndian
            try handle.write(contentsOf: Data(bytes: &length, count: 8))
            try handle.write(contentsOf: headerData)
            for tensor in tensors {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(tensor.byteCount, 1), alignment: 64)
                defer { buffer.deallocate() }
                let body = UnsafeMutableRawBufferPointer(rebasing: buffer[0 ..< tensor.byteCount])
                body.initializeMemory(as: UInt8.self, repeating: 0)
                try tensor.produce(body)
                try handle.write(contentsOf: UnsafeRawBufferPointer(body))
            }
        }
    }
}
