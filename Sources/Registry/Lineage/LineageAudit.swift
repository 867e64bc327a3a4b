import Foundation
import HubCore

/// Checks a lineage chain end to end: every file's bytes hash to what the registry recorded,
/// and every edge's recorded inputs exist and match — the parent's weights, a distillation
/// teacher, the calibration text and the fine-tuning corpus. It knows nothing of where the
/// bytes live: the caller hashes files (from the local blob store, or downloaded from a
/// daemon) and says which digests it can vouch for.
public struct LineageAudit: Sendable {
    public struct Finding: Sendable, Codable, Equatable {
        public enum Status: String, Sendable, Codable {
            case ok
            /// Checked and wrong: the audit fails.
            case mismatch
            /// Recorded, but nothing here can confirm it (a calibration file only its author had).
            case unverifiable
        }

        /// The revision the check is about, as namespace/name@revision.
        public let node: String
        public let check: String
        public let status: Status
        public let detail: String
    }

    /// Digests the caller can vouch for, with what they are: the pinned fine-tuning corpus,
    /// the default calibration text.
    public var knownInputs: [SHA256Digest: String]
    /// The sha256 of a file's bytes as they are now.
    public var hash: @Sendable (LineageNode, RevisionFile) throws -> SHA256Digest
    /// Whether a blob with this digest is held where the chain lives (a teacher model that is
    /// not on the chain itself).
    public var blobExists: @Sendable (SHA256Digest) throws -> Bool

    public init(knownInputs: [SHA256Digest: String], hash: @escaping @Sendable (LineageNode, RevisionFile) throws -> SHA256Digest,
                blobExists: @escaping @Sendable (SHA256Digest) throws -> Bool) {
        self.knownInputs = knownInputs
        self.hash = hash
        self.blobExists = blobExists
    }

    /// Every check, from the root of the chain down to the variant, so that the first
    /// mismatch is the earliest point where the record and the bytes part ways.
    /// `progress` hears each file before it is hashed.
    public func run(_ chain: [LineageNode], progress: ((LineageNode, RevisionFile) -> Void)? = nil) -> [Finding] {
        var findings: [Finding] = []
        let ordered = Array(chain.reversed())
        for (index, node) in ordered.enumerated() {
            for file in node.files {
                progress?(node, file)
                do {
                    let digest = try hash(node, file)
                    findings.append(Finding(node: node.reference, check: "bytes of \(file.path)", status: digest == file.sha256 ? .ok : .mismatch,
                                            detail: digest == file.sha256 ? "sha256 \(file.sha256.hex.prefix(16))…"
                                                : "hash to \(digest.hex), the registry recorded \(file.sha256.hex)"))
                } catch {
                    findings.append(Finding(node: node.reference, check: "bytes of \(file.path)", status: .mismatch,
                                            detail: "cannot be read: \(error)"))
                }
            }
            guard let record = node.record else {
                if index == 0, node.kind != .base {
                    findings.append(Finding(node: node.reference, check: "lineage", status: .mismatch,
                                            detail: "a \(node.kind.rawValue) variant with no edge to the model it was made from"))
                }
                continue
            }
            let parent = index > 0 ? ordered[index - 1] : nil
            findings += edgeFindings(node: node, record: record, parent: parent, chain: ordered)
        }
        return findings
    }

    private func edgeFindings(node: LineageNode, record: JSONValue, parent: LineageNode?, chain: [LineageNode]) -> [Finding] {
        var findings: [Finding] = []
        func add(_ check: String, _ status: Finding.Status, _ detail: String) {
            findings.append(Finding(node: node.reference, check: check, status: status, detail: detail))
        }
        // Fine-tune and quantization records name their parent's weights, a compression recipe
        // its base's; a quantization record alone counts quantized tensors.
        let fromParent = record["parent_checkpoint_sha256"] != nil
        let isQuantization = fromParent && record["quantized_tensors"] != nil
        let isFineTune = fromParent && !isQuantization
        let inputKey = fromParent ? "parent_checkpoint_sha256" : "base_checkpoint_sha256"
        guard let parent else {
            add("parent", .mismatch, "the edge names a parent that is not in the registry (or not visible to this reader)")
            return findings
        }
        let parentWeights = parent.files.first { $0.path == "model.safetensors" }
        if let input = record[inputKey]?.stringValue, let parentWeights {
            add("input weights", input == parentWeights.sha256.hex ? .ok : .mismatch,
                input == parentWeights.sha256.hex ? "made from \(parent.reference)'s model.safetensors"
                    : "the record names \(input), \(parent.reference)'s model.safetensors is \(parentWeights.sha256.hex)")
        } else {
            add("input weights", .mismatch, "the record has no \(inputKey), or the parent has no model.safetensors")
        }
        // Quantization rewrites the same matrices in blocks: no corpus, and the same parameter count.
        if isQuantization {
            if node.parameters != parent.parameters {
                add("shape", .mismatch, "quantization keeps the shape, but \(node.parameters) parameters differ from the parent's \(parent.parameters)")
            }
        } else if isFineTune {
            if let corpus = record["corpus"]?["sha256"]?.stringValue {
                add("fine-tuning corpus", status(of: corpus), describe(corpus, what: "corpus"))
            } else {
                add("fine-tuning corpus", .mismatch, "the fine-tune record names no corpus sha256")
            }
            if let teacher = record["distillation"]?["teacher_checkpoint_sha256"]?.stringValue {
                let onChain = chain.contains { $0.files.contains { $0.path == "model.safetensors" && $0.sha256.hex == teacher } }
                let held = onChain || ((try? SHA256Digest(hex: teacher)).map { (try? blobExists($0)) ?? false } ?? false)
                add("distillation teacher", held ? .ok : .mismatch,
                    held ? "teacher \(teacher.prefix(16))… is \(onChain ? "on this chain" : "in the registry")"
                        : "teacher \(teacher) is in neither the chain nor the registry")
            }
            if node.parameters != parent.parameters {
                add("shape", .mismatch, "fine-tuning keeps the shape, but \(node.parameters) parameters differ from the parent's \(parent.parameters)")
            }
        } else {
            if case .number(let recorded)? = record["variant_parameters"] {
                add("parameters", Int(recorded) == node.parameters ? .ok : .mismatch,
                    Int(recorded) == node.parameters ? "\(node.parameters) as recorded"
                        : "the recipe says \(Int(recorded)), the weights hold \(node.parameters)")
            }
            if let calibration = record["calibration"]?["sha256"]?.stringValue {
                add("calibration text", status(of: calibration), describe(calibration, what: "calibration text"))
            }
        }
        return findings
    }

    private func status(of hex: String) -> Finding.Status {
        guard let digest = try? SHA256Digest(hex: hex) else { return .mismatch }
        return knownInputs[digest] == nil ? .unverifiable : .ok
    }

    private func describe(_ hex: String, what: String) -> String {
        guard let digest = try? SHA256Digest(hex: hex) else { return "'\(hex)' is not a sha256" }
        if let known = knownInputs[digest] { return "\(hex.prefix(16))… is \(known)" }
        return "\(hex.prefix(16))… is not a \(what) this hubctl knows; only its author can confirm it"
    }
}
