import ArgumentParser
import Evaluator
import Foundation
import HubCore
import Registry
import Training

struct Lineage: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show where a variant came from, back to its base; --audit checks every byte.",
        discussion: """
        Prints the chain from the revision back to its base, with every edge's record:
        compression method, ratio, calibration sha256, fine-tune settings, corpus, code \
        version. It reads the local registry, or a daemon when --endpoint is given.

        --audit re-hashes every file along the chain (downloading them from a daemon) and \
        checks that each edge's recorded inputs exist and match: the parent's weights, a \
        distillation teacher, the calibration text and the fine-tuning corpus this hubctl \
        pins. It stops at nothing: every finding is printed, and the first mismatch is named \
        at the end.

        Exit status: 0 the chain checks out (or was only shown); 4 the audit found a \
        mismatch; 1 any other error; 64 bad usage.

        Examples:
          hubctl lineage team/SmolLM2-width30
          hubctl lineage team/SmolLM2-width30@v1 --audit
          hubctl lineage team/SmolLM2-width30 --audit \\
              --endpoint http://hub.internal:8080
        """
    )
    @Argument(help: "namespace/name, optionally @revision (default main).") var repository: String
    @Flag(help: "Re-hash every file and check every edge's recorded inputs.") var audit = false
    @Flag(help: "Print the chain (and the audit's findings) as JSON.") var json = false
    @OptionGroup var remote: EndpointOptions

    func run() throws {
        let parts = repository.split(separator: "@", maxSplits: 1).map(String.init)
        let name = try RepositoryName(parts[0])
        let revision = parts.count > 1 ? parts[1] : "main"
        let chain: [LineageNode]
        let auditor: LineageAudit
        var known: [SHA256Digest: String] = [:]
        if let corpus = try? SHA256Digest(hex: FineTuneCorpus.pinnedSHA256) { known[corpus] = "the fine-tuning corpus this hubctl pins" }
        if let calibration = try? XSumCorpus.calibrationText(bigbench: ModelLocator.assetCache.appendingPathComponent("bigbench")) {
            known[SHA256Digest.of(Data(calibration.text.utf8))] = "the default calibration text (xsum articles 0..<64)"
        }
        if remote.endpoint != nil {
            let client = remote.client()
            chain = try client.lineage(of: name, revision: revision)
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hubctl-audit-\(UUID().uuidString)")
            auditor = LineageAudit(knownInputs: known, hash: { node, file in
                try client.hashFile(try RepositoryName(node.repository), revision: node.revision, path: file.path, size: file.size, scratch: scratch)
            }, blobExists: { _ in false })
        } else {
            let registry = try remote.data.open()
            chain = try registry.lineage(of: name, revision: revision)
            auditor = LineageAudit(knownInputs: known, hash: { _, file in
                try SHA256Digest.ofFile(at: registry.blobs.fileURL(for: file.sha256))
            }, blobExists: { try registry.store.blobSize($0) != nil && registry.blobs.contains($0) })
        }
        let findings = audit ? auditor.run(chain) { node, file in
            if !json { Output.progress("hashing \(node.repository) \(file.path) (\(Output.bytes(file.size)))") }
        } : []
        if json {
            print(try Output.json(LineageReport(chain: chain, findings: audit ? findings : nil)))
        } else {
            print(LineageRenderer.text(chain))
            if audit {
                print("")
                for finding in findings {
                    print("\(finding.status.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) \(finding.node.prefix(60))  \(finding.check): \(finding.detail)")
                }
            }
        }
        if let first = findings.first(where: { $0.status == .mismatch }) {
            Output.progress("audit failed: first mismatch at \(first.node), \(first.check): \(first.detail)")
            throw ExitCode(4)
        }
        if audit, !json {
            let unverifiable = findings.filter { $0.status == .unverifiable }.count
            print("audit passed: \(findings.count - unverifiable) checks ok\(unverifiable > 0 ? ", \(unverifiable) not verifiable here" : "")")
        }
    }
}

struct LineageReport: Encodable {
    let chain: [LineageNode]
    let findings: [LineageAudit.Finding]?
}

enum LineageRenderer {
    static func text(_ chain: [LineageNode]) -> String {
        var lines: [String] = []
        for (depth, node) in chain.enumerated() {
            let indent = String(repeating: "   ", count: depth)
            let weights = node.files.first { $0.path == "model.safetensors" }.map { ", weights \($0.sha256.hex.prefix(16))…" } ?? ""
            lines.append("\(indent)\(node.repository)@\(node.revision.prefix(12))  \(node.kind.rawValue), \(node.parameters) parameters\(weights)")
            if let record = node.record {
                lines.append("\(indent)└─ " + describe(record))
            } else if let source = node.source {
                let from = source["file"]?.stringValue ?? source["repository"]?.stringValue ?? source["format"]?.stringValue ?? "?"
                lines.append("\(indent)   (root: \(source["format"]?.stringValue ?? "imported") from \(from))")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// One line for an edge's record: what was done, to what, with which inputs.
    static func describe(_ record: JSONValue) -> String {
        func number(_ key: String) -> Double? { if case .number(let value)? = record[key] { value } else { nil } }
        let code = record["code_version"]?.stringValue ?? "?"
        if record["parent_checkpoint_sha256"] != nil {
            var text = "\(record["method"]?.stringValue ?? "?") fine-tune, \(record["loss"]?.stringValue ?? "?"), "
                + "\(Int(number("tokens") ?? 0)) tokens in \(Int(number("steps") ?? 0)) steps"
            if let corpus = record["corpus"]?["sha256"]?.stringValue { text += ", corpus \(corpus.prefix(16))…" }
            if let teacher = record["distillation"]?["teacher_checkpoint_sha256"]?.stringValue { text += ", teacher \(teacher.prefix(16))…" }
            return text + ", \(code)"
        }
        var text = String(format: "%@ r = %.4f (asked %.2f)", record["method"]?.stringValue ?? "?", number("achieved_ratio") ?? 0,
                          number("requested_ratio") ?? 0)
        if let calibration = record["calibration"]?["sha256"]?.stringValue {
            text += ", calibration \(calibration.prefix(16))… (\(record["calibration"]?["source"]?.stringValue ?? "?"))"
        } else {
            text += ", no calibration"
        }
        return text + ", \(code)"
    }
}
