import Builds
import Evaluator
import Foundation
import HubCore

/// What a user will accept: a latency, a memory ceiling, a quality floor, and what to favour
/// among the variants that meet all of them.
public struct Budget: Sendable, Codable, Equatable {
    public enum Preference: String, Sendable, Codable, CaseIterable { case quality, speed, size }

    /// The latency ceiling. With no prompt and no new tokens it bounds the time per decoded
    /// token; otherwise the time to prefill `promptTokens` and then decode `newTokens`.
    public var maxLatencyMilliseconds: Double?
    public var promptTokens: Int
    public var newTokens: Int
    public var maxMemoryBytes: Int?
    /// Mean accuracy over the suite's tasks.
    public var minAccuracy: Double?
    /// Held-out cross-entropy (nats per token).
    public var maxLoss: Double?
    public var preference: Preference

    public init(maxLatencyMilliseconds: Double? = nil, promptTokens: Int = 0, newTokens: Int = 0, maxMemoryBytes: Int? = nil,
                minAccuracy: Double? = nil, maxLoss: Double? = nil, preference: Preference = .quality) {
        self.maxLatencyMilliseconds = maxLatencyMilliseconds
        self.promptTokens = promptTokens
        self.newTokens = newTokens
        self.maxMemoryBytes = maxMemoryBytes
        self.minAccuracy = minAccuracy
        self.maxLoss = maxLoss
        self.preference = preference
    }

    enum CodingKeys: String, CodingKey {
        case maxLatencyMilliseconds = "max_latency_ms", promptTokens = "prompt_tokens", newTokens = "new_tokens"
        case maxMemoryBytes = "max_memory_bytes", minAccuracy = "min_accuracy", maxLoss = "max_loss", preference
    }

    /// What the latency figure means, in words.
    public var latencyMeaning: String {
        promptTokens == 0 && newTokens == 0 ? "per decoded token"
            : "prefill \(promptTokens) tokens + decode \(newTokens)"
    }
}

/// A figure for one candidate with its spread and where it came from.
public struct Estimate: Sendable, Codable, Equatable {
    public let value: Double
    public let low: Double
    public let high: Double
    /// How it was obtained: measured here, scaled from another machine, which suite.
    public let basis: String
}

/// One constraint applied to one candidate.
public struct BudgetCheck: Sendable, Codable, Equatable {
    public let constraint: String
    public let passed: Bool
    /// The measured value against the limit, or why there is none.
    public let reason: String
}

/// A base or variant considered for a budget, with its figures on this machine and the verdict.
public struct Candidate: Sendable, Codable, Equatable {
    public let repository: String
    public let revision: String
    public let base: String
    public let kind: VariantRecord.Kind
    public let bytes: Int
    public let parameters: Int
    /// The last compression method on its lineage (nil for a base).
    public let method: String?
    /// 1 − parameters / the base's parameters.
    public let ratio: Double
    /// Fine-tuning tokens summed over its lineage.
    public let fineTuneTokens: Int
    public let latencyMilliseconds: Estimate?
    public let memoryBytes: Estimate?
    public let loss: Estimate?
    public let accuracy: Estimate?
    public let checks: [BudgetCheck]

    public var kept: Bool { checks.allSatisfy(\.passed) }
    public var reference: String { "\(repository)@\(revision)" }
}

/// A variant that does not exist yet but would fit, predicted from the measured ones.
public struct Suggestion: Sendable, Codable, Equatable {
    public let base: String
    public let method: String
    public let ratio: Double
    public let predicted: [String: Double]
    public let basis: String
    /// The build that would make it: compress at the ratio, evaluate on the full suite.
    public let recipe: BuildRecipe
    /// Shell lines that queue that build on the daemon and follow it.
    public let commands: [String]
}

extension Suggestion {
    /// A suggestion with the recipe and commands that build it: compress at the ratio rounded
    /// up to a whole percent (so the variant is at least as small), evaluate on the full suite.
    public init(base: String, method: String, ratio fit: Double, predicted: [String: Double], basis: String) {
        let repository = String(base.split(separator: "@").first ?? "")
        let ratio = min((fit * 100).rounded(.up) / 100, 0.99)
        let name = "\(repository)-\(method)-\(Int((ratio * 100).rounded()))"
        let recipe = BuildRecipe(base: base, name: name, compression: .init(method: method, ratio: ratio),
                                 evaluation: .init(suite: "full", latency: true))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = (try? encoder.encode(recipe)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        let file = (name.split(separator: "/").last.map(String.init) ?? name) + ".json"
        self.init(base: base, method: method, ratio: fit, predicted: predicted, basis: basis, recipe: recipe,
                  commands: ["echo '\(json)' > \(file)", "hubctl build submit \(file) --watch"])
    }
}

public struct Selection: Sendable, Codable, Equatable {
    public let budget: Budget
    /// Kept candidates best first by the preference, then the dropped ones nearest first.
    public let candidates: [Candidate]
    public let chosen: Candidate?
    public let suggestions: [Suggestion]
    /// This machine's speed, when a latency measured elsewhere had to be scaled by it.
    public let calibration: MachineSpeed?

    /// The same selection with more suggestions (the laws' predictions), smallest ratio first.
    public func adding(_ more: [Suggestion]) -> Selection {
        Selection(budget: budget, candidates: candidates, chosen: chosen, suggestions: (suggestions + more).sorted { $0.ratio < $1.ratio },
                  calibration: calibration)
    }
}

/// Chooses the variant that fits a budget from a family's members and their metrics records.
/// Latency counts only as measured on this machine's profile (CPU model, BLAS threads and,
/// when given, the BLAS build with the kernels it chose);
/// a latency measured elsewhere is scaled by the ratio of the two machines' speeds (sgemm
/// for prefill, memory bandwidth for decode), which costs one short local calibration run and
/// is said in the candidate's basis. Pure apart from that run.
public struct VariantSelector: Sendable {
    public let cpuModel: String
    public let blasThreads: Int
    /// OpenBLAS's configuration here (HardwareProfile.blas); nil matches any.
    public let blas: String?
    /// Measures this machine when a latency needs scaling; called at most once.
    public let calibrate: @Sendable () -> MachineSpeed

    public init(cpuModel: String, blasThreads: Int, blas: String? = nil, calibrate: @escaping @Sendable () -> MachineSpeed) {
        self.cpuModel = cpuModel
        self.blasThreads = blasThreads
        self.blas = blas
        self.calibrate = calibrate
    }

    public func select(_ members: [FamilyMember], budget: Budget) -> Selection {
        var speed: MachineSpeed?
        let local = { () -> MachineSpeed in
            if let speed { return speed }
            let measured = calibrate()
            speed = measured
            return measured
        }
        let baseParameters = Dictionary(members.filter { $0.edges.isEmpty }.map { ("\($0.repository)@\($0.revision)", $0.parameters) },
                                        uniquingKeysWith: { a, _ in a })
        // A superseded revision (its repository's main has moved on) is history, not an offer:
        // its measurement describes weights the repository no longer serves by default.
        let candidates = members.filter(\.isCurrent)
            .map { candidate($0, baseParameters: baseParameters[$0.base] ?? $0.parameters, budget: budget, local: local) }
        let kept = candidates.filter(\.kept).sorted { better($0, $1, budget.preference) }
        let dropped = candidates.filter { !$0.kept }.sorted { distance($0, budget) < distance($1, budget) }
        let suggestions = kept.isEmpty ? suggest(candidates, budget: budget) : []
        return Selection(budget: budget, candidates: kept + dropped, chosen: kept.first, suggestions: suggestions, calibration: speed)
    }

    // MARK: - Figures

    private func candidate(_ member: FamilyMember, baseParameters: Int, budget: Budget, local: () -> MachineSpeed) -> Candidate {
        let records = member.metrics.compactMap { json -> MetricsRecord? in
            guard let data = try? JSONEncoder().encode(json) else { return nil }
            return try? JSONDecoder().decode(MetricsRecord.self, from: data)
        }
        let latency = budget.maxLatencyMilliseconds == nil && budget.preference != .speed ? nil
            : latencyEstimate(records, budget: budget, local: local)
        let memory = memoryEstimate(records)
        let loss = lossEstimate(records)
        let accuracy = accuracyEstimate(records)
        var checks: [BudgetCheck] = []
        func limitCheck(_ name: String, _ estimate: Estimate?, limit: Double?, atMost: Bool, unit: (Double) -> String, missing: String) {
            guard let limit else { return }
            let constraint = "\(name) \(atMost ? "≤" : "≥") \(unit(limit))"
            guard let estimate else {
                checks.append(BudgetCheck(constraint: constraint, passed: false, reason: missing))
                return
            }
            let passed = atMost ? estimate.value <= limit : estimate.value >= limit
            let spread = estimate.low == estimate.high ? "" : " (spread \(unit(estimate.low))–\(unit(estimate.high)))"
            checks.append(BudgetCheck(constraint: constraint, passed: passed,
                                      reason: "\(unit(estimate.value))\(spread) \(passed ? "fits" : "does not fit"); \(estimate.basis)"))
        }
        let evalHint = "measure it with: hubctl eval \(member.repository)@\(member.revision.prefix(12)) --suite full --record"
        limitCheck("latency (\(budget.latencyMeaning))", latency, limit: budget.maxLatencyMilliseconds, atMost: true,
                   unit: { String(format: "%.1f ms", $0) },
                   missing: records.contains { $0.latency != nil }
                       ? "latency was measured only on other machines, without the machine speed needed to scale it; \(evalHint)"
                       : "no latency measured; \(evalHint)")
        limitCheck("memory", memory, limit: budget.maxMemoryBytes.map(Double.init), atMost: true, unit: { Self.megabytes($0) },
                   missing: "no peak memory measured; \(evalHint)")
        limitCheck("accuracy", accuracy, limit: budget.minAccuracy, atMost: false, unit: { String(format: "%.3f", $0) },
                   missing: "no task accuracy measured; \(evalHint)")
        limitCheck("loss", loss, limit: budget.maxLoss, atMost: true, unit: { String(format: "%.3f", $0) },
                   missing: "no held-out loss measured; \(evalHint)")
        let compression = member.edges.last { $0["base_checkpoint_sha256"] != nil }
        let tokens = member.edges.reduce(0) { sum, edge in
            if case .number(let count)? = edge["tokens"], edge["parent_checkpoint_sha256"] != nil { return sum + Int(count) }
            return sum
        }
        return Candidate(repository: member.repository, revision: member.revision, base: member.base, kind: member.kind,
                         bytes: member.bytes, parameters: member.parameters, method: compression?["method"]?.stringValue,
                         ratio: max(0, 1 - Double(member.parameters) / Double(max(baseParameters, 1))), fineTuneTokens: tokens,
                         latencyMilliseconds: latency, memoryBytes: memory, loss: loss, accuracy: accuracy, checks: checks)
    }

    static func megabytes(_ bytes: Double) -> String { String(format: "%.0f MB", bytes / 1e6) }

    /// Latency in milliseconds from one record at one percentile, for the budget's workload.
    static func latency(_ result: LatencyProbe.Result, budget: Budget, p95: Bool, prefillScale: Double = 1, decodeScale: Double = 1) -> Double {
        let decode = (p95 ? result.decodePerToken.p95Milliseconds : result.decodePerToken.p50Milliseconds) * decodeScale
        if budget.promptTokens == 0, budget.newTokens == 0 { return decode }
        let points = result.prefill.sorted { $0.tokens < $1.tokens }
            .map { (Double($0.tokens), (p95 ? $0.latency.p95Milliseconds : $0.latency.p50Milliseconds) * prefillScale) }
        let prefill = budget.promptTokens == 0 ? 0 : max(0, Interpolation.value(at: Double(budget.promptTokens), points) ?? 0)
        return prefill + Double(budget.newTokens) * decode
    }

    private func latencyEstimate(_ records: [MetricsRecord], budget: Budget, local: () -> MachineSpeed) -> Estimate? {
        let measured = records.filter { $0.latency != nil }
        let here = measured.filter { $0.hardware.matches(cpuModel: cpuModel, blasThreads: blasThreads, blas: blas) }
        // The newest quiet record decides; a record measured under load, alone, says so.
        let counted = here.quietLatencyFirst
        if let newest = counted.last?.latency {
            let p50s = counted.map { Self.latency($0.latency!, budget: budget, p95: false) }
            let p95s = counted.map { Self.latency($0.latency!, budget: budget, p95: true) }
            let loaded = here.count - counted.count
            let note = newest.measuredUnderLoad ? String(format: "; measured under load (decode p95 over %.0f× its p50): re-measure on idle cores with hubctl eval --record",
                                                         LatencyProbe.Result.loadedSpread)
                : loaded == 0 ? "" : "; \(loaded) record(s) measured under load set aside"
            return Estimate(value: Self.latency(newest, budget: budget, p95: false), low: p50s.min()!, high: p95s.max()!,
                            basis: "p50 (p95 as the high end) measured on this machine, \(blasThreads) threads, \(counted.count) record(s)\(note)")
        }
        guard let elsewhere = measured.filter({ $0.machineSpeed != nil }).quietLatencyFirst.last,
              let remote = elsewhere.machineSpeed else { return nil }
        let mine = local()
        let prefillScale = remote.sgemmGFLOPS / mine.sgemmGFLOPS, decodeScale = remote.memoryGBPS / mine.memoryGBPS
        let result = elsewhere.latency!
        return Estimate(
            value: Self.latency(result, budget: budget, p95: false, prefillScale: prefillScale, decodeScale: decodeScale),
            low: Self.latency(result, budget: budget, p95: false, prefillScale: prefillScale, decodeScale: decodeScale),
            high: Self.latency(result, budget: budget, p95: true, prefillScale: prefillScale, decodeScale: decodeScale),
            basis: String(format: "scaled from %@ (%d threads) by a local calibration run: sgemm %.0f→%.0f GFLOP/s, memory %.1f→%.1f GB/s",
                          elsewhere.hardware.cpuModel, elsewhere.hardware.blasThreads, remote.sgemmGFLOPS, mine.sgemmGFLOPS,
                          remote.memoryGBPS, mine.memoryGBPS))
    }

    private func memoryEstimate(_ records: [MetricsRecord]) -> Estimate? {
        let peaks = records.map(\.peakRSSBytes).filter { $0 > 0 }.map(Double.init)
        guard let newest = peaks.last else { return nil }
        return Estimate(value: newest, low: peaks.min()!, high: peaks.max()!,
                        basis: "peak resident memory while evaluating, \(peaks.count) record(s)")
    }

    /// Records of the most thorough suite that has what `has` asks: full, else smoke.
    private func bestSuite(_ records: [MetricsRecord], _ has: (MetricsRecord) -> Bool) -> [MetricsRecord] {
        for suite in ["full", "smoke"] {
            let chosen = records.filter { $0.suite == suite && has($0) }
            if !chosen.isEmpty { return chosen }
        }
        return records.filter(has)
    }

    private func lossEstimate(_ records: [MetricsRecord]) -> Estimate? {
        let chosen = bestSuite(records) { $0.loss != nil }
        guard let newest = chosen.last?.loss else { return nil }
        let values = chosen.compactMap { $0.loss?.crossEntropy }
        return Estimate(value: newest.crossEntropy, low: values.min()!, high: values.max()!,
                        basis: "\(chosen.last!.suite) suite, \(newest.documents) articles")
    }

    private func accuracyEstimate(_ records: [MetricsRecord]) -> Estimate? {
        let chosen = bestSuite(records) { !$0.tasks.isEmpty }
        guard let newest = chosen.last else { return nil }
        let mean = newest.tasks.map(\.accuracy).reduce(0, +) / Double(newest.tasks.count)
        let error = newest.tasks.map { $0.accuracyStandardError * $0.accuracyStandardError }.reduce(0, +).squareRoot()
            / Double(newest.tasks.count)
        return Estimate(value: mean, low: mean - error, high: mean + error,
                        basis: "mean of \(newest.tasks.count) tasks, \(newest.suite) suite, ± one standard error")
    }

    // MARK: - Ranking

    private func better(_ a: Candidate, _ b: Candidate, _ preference: Budget.Preference) -> Bool {
        let quality: (Candidate) -> Double = { $0.loss?.value ?? ($0.accuracy.map { 100 - $0.value } ?? .infinity) }
        let keys: [(Candidate) -> Double]
        switch preference {
        case .quality: keys = [quality, { Double($0.bytes) }]
        case .speed: keys = [{ $0.latencyMilliseconds?.value ?? .infinity }, quality]
        case .size: keys = [{ Double($0.bytes) }, quality]
        }
        for key in keys where key(a) != key(b) { return key(a) < key(b) }
        return a.reference < b.reference
    }

    /// How far a dropped candidate is from fitting: the relative excess summed over the
    /// constraints it misses (infinite when a figure is missing).
    private func distance(_ candidate: Candidate, _ budget: Budget) -> Double {
        var total = 0.0
        func excess(_ value: Double?, _ limit: Double?, atMost: Bool) {
            guard let limit else { return }
            guard let value else { total = .infinity; return }
            total += max(0, atMost ? (value - limit) / limit : (limit - value) / limit)
        }
        excess(candidate.latencyMilliseconds?.value, budget.maxLatencyMilliseconds, atMost: true)
        excess(candidate.memoryBytes?.value, budget.maxMemoryBytes.map(Double.init), atMost: true)
        excess(candidate.accuracy?.value, budget.minAccuracy, atMost: false)
        excess(candidate.loss?.value, budget.maxLoss, atMost: true)
        return total
    }

    // MARK: - Suggestions

    /// For each base and compression method with measured variants (not fine-tuned), the
    /// smallest ratio whose interpolated latency and memory fit, if its interpolated quality
    /// still does. Before compression laws exist, piecewise-linear interpolation between
    /// measured ratios (the base counts as r = 0) is the prediction; past the largest
    /// measured ratio it extends the last segment, and says so.
    private func suggest(_ candidates: [Candidate], budget: Budget) -> [Suggestion] {
        var suggestions: [Suggestion] = []
        for (base, family) in Dictionary(grouping: candidates, by: \.base).sorted(by: { $0.key < $1.key }) {
            let root = family.first { $0.kind == .base }
            let plain = family.filter { $0.method != nil && $0.fineTuneTokens == 0 }
            for (method, variants) in Dictionary(grouping: plain, by: { $0.method! }).sorted(by: { $0.key < $1.key }) {
                let points = ([root].compactMap { $0 } + variants).sorted { $0.ratio < $1.ratio }
                guard points.count >= 2 else { continue }
                let metrics: [(name: String, limit: Double?, atMost: Bool, value: (Candidate) -> Double?)] = [
                    ("latency_ms", budget.maxLatencyMilliseconds, true, { $0.latencyMilliseconds?.value }),
                    ("memory_bytes", budget.maxMemoryBytes.map(Double.init), true, { $0.memoryBytes?.value }),
                    ("loss", budget.maxLoss, true, { $0.loss?.value }),
                    ("accuracy", budget.minAccuracy, false, { $0.accuracy?.value }),
                ]
                var fit: Double?, predicted: [String: Double] = [:]
                search: for step in 1 ... 95 {
                    let r = Double(step) / 100
                    var values: [String: Double] = [:]
                    for metric in metrics where metric.limit != nil {
                        let series = points.compactMap { c in metric.value(c).map { (c.ratio, $0) } }
                        guard series.count >= 2, let value = Interpolation.value(at: r, series) else { break search }
                        values[metric.name] = value
                        if metric.atMost ? value > metric.limit! : value < metric.limit! { continue search }
                    }
                    fit = r
                    predicted = values
                    break
                }
                guard let fit else { continue }
                let largest = points.last!.ratio
                let basis = fit <= largest
                    ? String(format: "interpolated between the measured %@ variants (r = %@)", method,
                             points.map { String(format: "%.2f", $0.ratio) }.joined(separator: ", "))
                    : String(format: "extrapolated past the largest measured %@ ratio (%.2f): treat it as a guess", method, largest)
                suggestions.append(Suggestion(base: base, method: method, ratio: fit, predicted: predicted, basis: basis))
            }
        }
        return suggestions.sorted { $0.ratio < $1.ratio }
    }
}

/// Piecewise-linear interpolation through measured points, extended along the end segments.
enum Interpolation {
    static func value(at x: Double, _ points: [(Double, Double)]) -> Double? {
        let sorted = points.sorted { $0.0 < $1.0 }
        guard sorted.count >= 2 else { return sorted.first?.1 }
        var index = sorted.firstIndex { $0.0 >= x } ?? sorted.count - 1
        index = min(max(index, 1), sorted.count - 1)
        let (x0, y0) = sorted[index - 1], (x1, y1) = sorted[index]
        guard x1 > x0 else { return y1 }
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    }
}

extension Array where Element == MetricsRecord {
    /// Of records with a latency, those measured on quiet cores, or all of them where none
    /// was: a record whose decode tail shows other work taking the cores counts only where
    /// there is nothing else. Order is kept, so `last` is the newest that counts.
    var quietLatencyFirst: [MetricsRecord] {
        let quiet = filter { !$0.latency!.measuredUnderLoad }
        return quiet.isEmpty ? self : quiet
    }
}
