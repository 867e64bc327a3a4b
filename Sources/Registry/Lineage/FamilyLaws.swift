import Evaluator
import Foundation
import HubCore
import Laws

/// The laws fitted on one base's family at one moment: what `hubctl laws fit` stores in the
/// registry (`schemas/laws.schema.json`) and `hubctl laws show` prints.
public struct LawSet: Codable, Sendable, Equatable {
    public let base: String
    public let baseRevision: String
    /// The evaluation suite whose loss and accuracy were fitted (one suite: they differ).
    public let suite: String
    /// The hardware profile of the latency laws: CPU model and BLAS threads.
    public let cpuModel: String?
    public let blasThreads: Int?
    public let createdAt: String
    public let laws: [FittedLaw]
    /// Laws that could not be fitted, and why (too few points, one fine-tuning budget only…).
    public let skipped: [String]
    /// Repositories left out of the fit on purpose: variants kept to check predictions against.
    public var heldOut: [String]? = nil
    /// Variants measured in another registry that joined the fit from a saved family
    /// (`hubctl laws fit --family`), as repository@revision.
    public var imported: [String]? = nil
    /// The BLAS build of the latency laws' profile (OpenBLAS's configuration, which names the
    /// kernels it chose): the same CPU runs sgemm five times slower on a fallback kernel set.
    /// Absent in law sets fitted before it was recorded.
    public var blas: String? = nil

    enum CodingKeys: String, CodingKey {
        case base, baseRevision = "base_revision", suite, cpuModel = "cpu_model", blasThreads = "blas_threads", blas
        case createdAt = "created_at", laws, skipped, heldOut = "held_out", imported
    }

    /// The latency profile in words: "Intel(R) Xeon(R) Processor, 2 BLAS threads, OpenBLAS
    /// SkylakeX kernels"; nil when the set has none.
    public var profileDescription: String? {
        guard let cpuModel else { return nil }
        let kernels = blas.flatMap(HardwareProfile.blasKernels).map { ", OpenBLAS \($0) kernels" } ?? ""
        return "\(cpuModel), \(blasThreads ?? 0) BLAS threads\(kernels)"
    }

    /// The law for `metric` by `method` in `form`, if fitted.
    public func law(_ metric: String, method: String, form: LawForm) -> FittedLaw? {
        laws.first { $0.metric == metric && $0.method == method && $0.form == form }
    }

    /// The law to predict `metric` by `method` after `tokens` of fine-tuning: among the forms
    /// that hold there (the polynomial forms were fitted without fine-tuning, so they hold only
    /// at D = 0; the paper's law knows D), the one whose leave-one-out error is smallest, which
    /// is the honest measure of how well a form predicts a point it has not seen.
    public func bestLaw(_ metric: String, method: String, tokens: Int) -> FittedLaw? {
        let usable = laws.filter { $0.metric == metric && $0.method == method && ($0.form == .paper || tokens == 0 || !Self.fineTunable(metric)) }
        return usable.min { ($0.looMeanRelativeError ?? .infinity) < ($1.looMeanRelativeError ?? .infinity) }
    }

    /// Whether fine-tuning moves the metric (loss and accuracy), as against the shape-only
    /// metrics (latency, memory), which a fine-tune of the same shape leaves alone.
    static func fineTunable(_ metric: String) -> Bool { metric == "loss" || metric == "accuracy" }
}

/// Turns a base's family into law points and fits every law the points allow.
public enum FamilyLaws {
    /// The metrics a law can be fitted for, with the forms tried for each.
    public static let metrics: [(name: String, forms: [LawForm])] = [
        ("loss", [.quadratic, .paper]), ("accuracy", [.linear, .paper]),
        ("decode_ms", [.linear]), ("prefill_ms", [.linear]), ("peak_rss_mb", [.linear]),
    ]

    /// One value per family member for `metric`: loss and accuracy from the newest record of
    /// `suite`; latency and memory from the newest record on the given hardware profile.
    public static func points(_ members: [FamilyMember], metric: String, suite: String, cpuModel: String?, blasThreads: Int?,
                              blas: String? = nil) -> [LawPoint] {
        guard let base = members.first(where: { $0.kind == .base }) else { return [] }
        return members.compactMap { member -> LawPoint? in
            let records = member.metrics.compactMap { json -> MetricsRecord? in
                guard let data = try? JSONEncoder().encode(json) else { return nil }
                return try? JSONDecoder().decode(MetricsRecord.self, from: data)
            }
            let value: Double?
            switch metric {
            case "loss": value = records.last { $0.suite == suite && $0.loss != nil }?.loss?.crossEntropy
            case "accuracy":
                value = records.last { $0.suite == suite && !$0.tasks.isEmpty }.map { $0.tasks.map(\.accuracy).reduce(0, +) / Double($0.tasks.count) }
            default:
                // Latency is the same probe in every suite: the newest measurement on this
                // hardware counts (`hubctl eval --suite latency --record` re-measures a model
                // without its hour of scoring), a quiet one before one measured under load.
                // The peak resident set depends on what the suite ran (the full suite scores
                // 512-token windows), so memory comes from the suite's own record.
                let measuredHere = { (record: MetricsRecord) in
                    record.latency != nil && record.hardware.matches(cpuModel: cpuModel, blasThreads: blasThreads, blas: blas)
                }
                let here = records.filter(measuredHere).quietLatencyFirst.last
                switch metric {
                case "decode_ms": value = here?.latency?.decodePerToken.p50Milliseconds
                case "prefill_ms": value = here?.latency?.prefill.max { $0.tokens < $1.tokens }?.latency.p50Milliseconds
                case "peak_rss_mb":
                    let suiteRecord = records.last { $0.suite == suite && measuredHere($0) }
                    value = suiteRecord.map { Double($0.peakRSSBytes) / 1e6 }.flatMap { $0 > 0 ? $0 : nil }
                default: value = nil
                }
            }
            guard let value else { return nil }
            let compression = member.edges.last { $0["base_checkpoint_sha256"] != nil }
            let tokens = member.edges.reduce(0) { sum, edge in
                if case .number(let count)? = edge["tokens"], edge["parent_checkpoint_sha256"] != nil { return sum + Int(count) }
                return sum
            }
            let method = member.kind == .base ? "" : compression?["method"]?.stringValue ?? "?"
            return LawPoint(repository: member.repository, method: method,
                            ratio: max(0, 1 - Double(member.parameters) / Double(max(base.parameters, 1))), tokens: tokens, value: value)
        }
    }

    /// Every law the family's measurements allow, per compression method: the base (r = 0,
    /// D = 0) joins every method's points. The polynomial forms use only the points without
    /// fine-tuning; the paper's form uses them all.
    public static func fit(_ members: [FamilyMember], suite: String, cpuModel: String?, blasThreads: Int?, blas: String? = nil,
                           fitter: LawFitter = LawFitter()) -> (laws: [FittedLaw], skipped: [String]) {
        var laws: [FittedLaw] = [], skipped: [String] = []
        for (metric, forms) in metrics {
            let all = points(members, metric: metric, suite: suite, cpuModel: cpuModel, blasThreads: blasThreads, blas: blas)
            let base = all.filter { $0.method.isEmpty }
            for method in Set(all.map(\.method)).subtracting([""]).sorted() {
                let mine = base + all.filter { $0.method == method }
                for form in forms {
                    let used = form == .paper ? mine : mine.filter { $0.tokens == 0 }
                    let needed = form == .paper ? 3 : form.parameterNames.count + 1
                    guard used.count >= needed, Set(used.map(\.ratio)).count >= (form == .quadratic ? 3 : 2) else {
                        skipped.append("\(metric) by \(method), \(form.rawValue): \(used.count) point(s), too few")
                        continue
                    }
                    do { laws.append(try fitter.fit(used, form: form, metric: metric, method: method)) } catch {
                        skipped.append("\(metric) by \(method), \(form.rawValue): \(error)")
                    }
                }
            }
        }
        return (laws, skipped)
    }
}

extension HubRegistry {
    /// The base's family as it stands: of a variant repository committed more than once (a
    /// build run again after its stages changed), only the revision its main branch points
    /// at, so that a superseded measurement is neither counted twice nor mixed with its
    /// replacement.
    public func currentFamily(of repository: RepositoryName, revision: String = "main") throws -> [FamilyMember] {
        try family(of: repository, revision: revision).filter(\.isCurrent)
    }

    /// The members the laws of a base are fitted on: its family in this registry, joined by
    /// `imported` members, variants measured in another registry and saved from there (what
    /// `GET /api/models/{repo}/variants` answers). A sweep takes hours; saving its family lets
    /// it span machines whose registries do not survive. An imported variant counts only if
    /// its compression started from this base's exact weights (the sha256 its compression
    /// record names); one whose repository this registry also holds is left to the local
    /// measurement, and `notes` says so.
    public func lawMembers(of repository: RepositoryName, revision: String = "main", imported: [FamilyMember] = []) throws
        -> (members: [FamilyMember], imported: [String], notes: [String]) {
        let members = try currentFamily(of: repository, revision: revision)
        guard let root = members.first(where: { $0.kind == .base }) else { throw RegistryError.notAModel(repository, revision: revision) }
        guard !imported.isEmpty else { return (members, [], []) }
        guard let weights = try store.files(of: root.revision).first(where: { $0.path == "model.safetensors" })?.sha256.hex else {
            throw RegistryError.notAModel(repository, revision: root.revision)
        }
        var joined = members, used: [String] = [], notes: [String] = []
        // A saved family lists what its registry held; of a repository committed more than
        // once, the one not marked superseded, else (families saved before the mark) the
        // last listed, the newest.
        var newest: [String: FamilyMember] = [:]
        for member in imported where member.kind != .base && member.isCurrent { newest[member.repository] = member }
        for member in imported where member.kind != .base && newest[member.repository]?.revision == member.revision {
            let reference = "\(member.repository)@\(member.revision.prefix(10))"
            let start = member.edges.first?["base_checkpoint_sha256"]?.stringValue
            guard start == weights else {
                throw RegistryError.invalidVariant(
                    path: reference, reason: start.map { "compressed from weights \($0), not \(repository)'s model.safetensors (\(weights)); a saved family joins only the laws of its own base" }
                        ?? "its first lineage record names no base_checkpoint_sha256, so nothing shows it descends from \(repository)")
            }
            if let local = joined.firstIndex(where: { $0.repository == member.repository }) {
                // A fine-tuning build commits its compressed parent under the name of the
                // budget-0 cell (NAME-ft12k's parent is NAME), unmeasured: the measured
                // variant of another registry is the one that counts then.
                if joined[local].metrics.isEmpty && !member.metrics.isEmpty {
                    notes.append("\(reference) from a saved family: this registry holds \(member.repository) unmeasured (a fine-tuning build's compressed parent), so the saved measurement is used")
                    joined[local] = member
                    used.append("\(member.repository)@\(member.revision)")
                } else {
                    notes.append("\(reference) from a saved family: this registry measured \(member.repository) itself, and that measurement is used")
                }
                continue
            }
            joined.append(member)
            used.append("\(member.repository)@\(member.revision)")
        }
        return (joined, used, notes)
    }

    /// Fits every law the base's family allows and stores the set (with its points and
    /// bootstrap refits) in the registry.
    /// `holdOut` names variants to leave out (kept to check predictions against); each must be
    /// a member of the family. `imported` are variants measured elsewhere (see `lawMembers`).
    public func fitLaws(base repository: RepositoryName, revision: String = "main", suite: String, cpuModel: String?, blasThreads: Int?,
                        blas: String? = nil, holdOut: [String] = [], imported: [FamilyMember] = [], fitter: LawFitter = LawFitter()) throws -> LawSet {
        let (members, used, notes) = try lawMembers(of: repository, revision: revision, imported: imported)
        guard let root = members.first(where: { $0.kind == .base }) else { throw RegistryError.notAModel(repository, revision: revision) }
        for name in holdOut where !members.contains(where: { $0.repository == name && $0.kind != .base }) {
            throw RegistryError.invalidVariant(path: name, reason: "not a variant of \(repository)'s family, so it cannot be held out of its laws")
        }
        let (laws, skipped) = FamilyLaws.fit(members.filter { !holdOut.contains($0.repository) }, suite: suite, cpuModel: cpuModel,
                                             blasThreads: blasThreads, blas: blas, fitter: fitter)
        var set = LawSet(base: repository.description, baseRevision: root.revision, suite: suite, cpuModel: cpuModel, blasThreads: blasThreads,
                         createdAt: Timestamp.now(), laws: laws, skipped: skipped + notes)
        set.blas = blas
        if !holdOut.isEmpty { set.heldOut = holdOut.sorted() }
        if !used.isEmpty { set.imported = used.sorted() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try store.storeLaws(baseRevisionID: root.revision, suite: suite, recordJSON: String(decoding: try encoder.encode(set), as: UTF8.self))
        return set
    }

    /// The newest law set stored for the base (of `suite`, when given).
    public func laws(base repository: RepositoryName, revision: String = "main", suite: String? = nil) throws -> LawSet? {
        guard let root = try store.resolve(repository, revision: revision) else {
            throw RegistryError.revisionNotFound(repository: repository, revision: revision)
        }
        return try store.latestLaws(baseRevisionID: root.id, suite: suite).map { try JSONDecoder().decode(LawSet.self, from: Data($0.utf8)) }
    }
}
