import COpenBLAS

/// A row-major fp32 matrix view ([rows, columns], PyTorch's [out, in] for weights). The
/// memory belongs to someone else: a memory-mapped checkpoint or a `FloatBuffer`.
public struct Matrix: @unchecked Sendable {
    public let data: UnsafePointer<Float>
    public let rows: Int
    public let columns: Int

    public init(data: UnsafePointer<Float>, rows: Int, columns: Int) {
        self.data = data
        self.rows = rows
        self.columns = columns
    }

    public func row(_ index: Int) -> UnsafePointer<Float> { data + index * columns }
}

/// An owned, 64-byte aligned fp32 allocation (activations, converted weights, caches).
public final class FloatBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { pointer.initialize(repeating: 0, count: max(count, 1)) }
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count, zeroed: false)
        values.withUnsafeBufferPointer { pointer.initialize(from: $0.baseAddress!, count: values.count) }
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public func matrix(rows: Int, columns: Int) -> Matrix {
        precondition(rows * columns <= count)
        return Matrix(data: pointer, rows: rows, columns: columns)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// The runtime's thread setting. OpenBLAS keeps one global pool, so it is process-wide.
public enum BLASThreads {
    public static var count: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }
}
