import COpenBLAS
import Foundation

/// The machine a measurement was taken on, carried by every metrics record so that figures
/// from different machines or settings are never compared as if alike.
public struct HardwareProfile: Codable, Sendable, Equatable {
    public let cpuModel: String
    public let logicalCores: Int
    public let memoryBytes: Int
    public let blas: String
    public let blasThreads: Int
    public let operatingSystem: String

    enum CodingKeys: String, CodingKey {
        case cpuModel = "cpu_model", logicalCores = "logical_cores", memoryBytes = "memory_bytes", blas
        case blasThreads = "blas_threads", operatingSystem = "operating_system"
    }

    /// The kernel set named in an OpenBLAS configuration string ("OpenBLAS 0.3.21 NO_LAPACKE
    /// DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64" → "SkylakeX"): the one word that is
    /// neither the library's name, its version, nor an upper-case build option.
    public static func blasKernels(_ config: String) -> String? {
        config.split(separator: " ").map(String.init).last { word in
            word != "OpenBLAS" && word.first?.isNumber == false && word.uppercased() != word
        }
    }

    /// Whether a measurement taken on this profile counts as taken on the one named: the same
    /// CPU model and BLAS threads and, when `blas` is given, the same BLAS build. The same CPU
    /// with another build (or one that fell back to older kernels) is another machine for speed.
    public func matches(cpuModel: String?, blasThreads: Int?, blas: String?) -> Bool {
        self.cpuModel == cpuModel && self.blasThreads == blasThreads && (blas == nil || self.blas == blas)
    }

    public static func current() -> HardwareProfile {
        let cpuInfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuInfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
        let config = openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS"
        return HardwareProfile(cpuModel: model ?? "unknown", logicalCores: ProcessInfo.processInfo.activeProcessorCount,
                               memoryBytes: Int(ProcessInfo.processInfo.physicalMemory), blas: config,
                               blasThreads: Int(openblas_get_num_threads()),
                               operatingSystem: ProcessInfo.processInfo.operatingSystemVersionString)
    }
}
