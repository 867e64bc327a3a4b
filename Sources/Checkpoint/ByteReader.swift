/// A bounds-checked little-endian cursor over a byte buffer. Every read checks the remaining
/// length first, so a truncated or lying header becomes an error, never an out-of-bounds read.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    private(set) var offset: Int

    init(_ buffer: UnsafeRawBufferPointer, offset: Int = 0) {
        self.buffer = buffer
        self.offset = offset
    }

    struct OutOfBounds: Error {
        let offset: Int
        let wanted: Int
        let available: Int
    }

    var remaining: Int { buffer.count - offset }

    mutating func skip(_ count: Int) throws(OutOfBounds) {
        guard count >= 0, count <= remaining else { throw OutOfBounds(offset: offset, wanted: count, available: remaining) }
        offset += count
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws(OutOfBounds) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw OutOfBounds(offset: offset, wanted: size, available: remaining) }
        let value = buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    mutating func readFloat() throws(OutOfBounds) -> Float { Float(bitPattern: try read(UInt32.self)) }
    mutating func readDouble() throws(OutOfBounds) -> Double { Double(bitPattern: try read(UInt64.self)) }

    /// Returns a view of the next `count` bytes without copying.
    mutating func slice(_ count: Int) throws(OutOfBounds) -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else { throw OutOfBounds(offset: offset, wanted: count, available: remaining) }
        let view = UnsafeRawBufferPointer(rebasing: buffer[offset ..< offset + count])
        offset += count
        return view
    }
}
