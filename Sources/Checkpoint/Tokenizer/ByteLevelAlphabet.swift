/// GPT-2's reversible map from bytes to printable characters: byte-level BPE vocabularies
/// spell every token in these characters (a space is `Ġ`, a newline `Ċ`).
enum ByteLevelAlphabet {
    static let characterForByte: [Unicode.Scalar] = {
        var printable: [Int] = Array(33 ... 126) + Array(161 ... 172) + Array(174 ... 255)
        var scalars = printable
        var next = 0
        for byte in 0 ..< 256 where !printable.contains(byte) {
            printable.append(byte)
            scalars.append(256 + next)
            next += 1
        }
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for (byte, scalar) in zip(printable, scalars) { table[byte] = Unicode.Scalar(UInt32(scalar))! }
        return table
    }()

    static let byteForCharacter: [Unicode.Scalar: UInt8] = {
        Dictionary(uniqueKeysWithValues: characterForByte.enumerated().map { ($1, UInt8($0)) })
    }()

    /// Spells raw bytes in the alphabet.
    static func spell(_ bytes: some Sequence<UInt8>) -> String {
        var result = String.UnicodeScalarView()
        for byte in bytes { result.append(characterForByte[Int(byte)]) }
        return String(result)
    }

    /// The bytes a spelled token stands for; nil if it uses characters outside the alphabet.
    static func bytes(of spelled: String) -> [UInt8]? {
        var result: [UInt8] = []
        for scalar in spelled.unicodeScalars {
            guard let byte = byteForCharacter[scalar] else { return nil }
            result.append(byte)
        }
        return result
    }
}
