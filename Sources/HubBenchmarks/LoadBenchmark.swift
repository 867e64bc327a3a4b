import Checkpoint
import Foundation
import HubCore

/// GGUF load and conversion of the shipped model, against reading the file and copying the
/// fp32 output in the same run.
enum LoadBenchmark {
    static func run(path: String) throws {
        let repetitions = 5
        let fileSize = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        print("model: \(path) (\(fileSize / 1_000_000) MB), median of \(repetitions) runs, page cache warm, \(ProcessInfo.processInfo.activeProcessorCount) cores")

        // Baseline 1: read every byte of the file into memory.
        let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: fileSize, alignment: 64)
        defer { readBuffer.deallocate() }
        let readSeconds = try time(repetitions) {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            var offset = 0
            while offset < fileSize {
                let n = read(handle.fileDescriptor, readBuffer.baseAddress! + offset, min(16 << 20, fileSize - offset))
                precondition(n > 0)
                offset += n
            }
            try handle.close()
        }

        // Stage 1: map and fully validate the header and tensor table.
        var file: GGUFFile!
        let openSeconds = try time(repetitions) { file = try GGUFFile(path: path) }

        // Stage 2: dequantize every tensor to fp32.
        let totalElements = file.tensors.reduce(0) { $0 + $1.elementCount }
        let output = UnsafeMutableBufferPointer<Float>.allocate(capacity: totalElements)
        defer { output.deallocate() }
        let dequantizeSeconds = try time(repetitions) {
            var offset = 0
            for tensor in file.tensors {
                let slice = UnsafeMutableBufferPointer(rebasing: output[offset ..< offset + tensor.elementCount])
                try Dequantizer.dequantize(file.rawBytes(of: tensor), type: tensor.type, tensor: tensor.name, into: slice)
                offset += tensor.elementCount
            }
        }

        // Baseline 2: copy the fp32 bytes once (what dequantization writes).
        let copyTarget = UnsafeMutableRawBufferPointer.allocate(byteCount: totalElements * 4, alignment: 64)
        defer { copyTarget.deallocate() }
        let copySeconds = time(repetitions) { copyTarget.copyMemory(from: UnsafeRawBufferPointer(output)) }

        // Stage 3: the whole conversion to a Hugging Face directory (dequantize, permute, write, fsync).
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hub-bench-\(UUID().uuidString)")
        let convertSeconds = try time(3) {
            let destination = scratch.appendingPathComponent(UUID().uuidString)
            _ = try GGUFConverter.convert(file, to: destination)
            try FileManager.default.removeItem(at: destination)
        }
        try? FileManager.default.removeItem(at: scratch)

        let fp32Bytes = Double(totalElements * 4)
        func gbps(_ bytes: Double, _ seconds: Double) -> String { String(format: "%6.2f GB/s", bytes / seconds / 1e9) }
        func ms(_ seconds: Double) -> String { String(format: "%8.1f ms", seconds * 1000) }
        print("")
        print("stage                          time        throughput     ratio")
        print("read file (baseline)        \(ms(readSeconds))   \(gbps(Double(fileSize), readSeconds)) in   1.00× read")
        print("mmap + validate header      \(ms(openSeconds))                  \(String(format: "%.3f", openSeconds / readSeconds))× read")
        print("dequantize all (fp32 out)   \(ms(dequantizeSeconds))   \(gbps(fp32Bytes, dequantizeSeconds)) out  \(String(format: "%.2f", dequantizeSeconds / readSeconds))× read, \(String(format: "%.2f", dequantizeSeconds / copySeconds))× memcpy of the output")
        print("memcpy of fp32 (baseline)   \(ms(copySeconds))   \(gbps(fp32Bytes, copySeconds))")
        print("load = open + dequantize    \(ms(openSeconds + dequantizeSeconds))   \(String(format: "%.2f", Double(fileSize) / 1e9 / (openSeconds + dequantizeSeconds))) GB/s of file")
        print("convert to HF dir (fsync)   \(ms(convertSeconds))   \(gbps(fp32Bytes, convertSeconds)) out")
    }
}
