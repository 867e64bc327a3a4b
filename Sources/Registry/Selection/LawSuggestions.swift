import Foundation
import Laws

extension VariantSelector {
    /// What the fitted laws predict would fit `budget`, per compression method: the smallest
    /// ratio (in steps of 0.01) at which every constrained metric's law predicts a value within
    /// its limit, without fine-tuning. Latency is predicted only for the time per decoded token
    /// and only from laws fitted on this machine's profile; a method whose laws cannot speak
    /// to a constraint is not suggested.
    public func suggestions(from laws: LawSet, budget: Budget) -> [Suggestion] {
        let sameProfile = laws.cpuModel == cpuModel && laws.blasThreads == blasThreads && (laws.blas == nil || blas == nil || laws.blas == blas)
        var suggestions: [Suggestion] = []
        for method in Set(laws.laws.map(\.method)).sorted() {
            func law(_ metric: String) -> FittedLaw? { laws.bestLaw(metric, method: method, tokens: 0) }
            var constraints: [(name: String, law: FittedLaw?, limit: Double, atMost: Bool, scale: Double)] = []
            if let latency = budget.maxLatencyMilliseconds {
                let usable = sameProfile && budget.promptTokens == 0 && budget.newTokens == 0
                constraints.append(("latency_ms", usable ? law("decode_ms") : nil, latency, true, 1))
            }
            if let memory = budget.maxMemoryBytes { constraints.append(("memory_bytes", law("peak_rss_mb"), Double(memory) / 1e6, true, 1e6)) }
            if let loss = budget.maxLoss { constraints.append(("loss", law("loss"), loss, true, 1)) }
            if let accuracy = budget.minAccuracy { constraints.append(("accuracy", law("accuracy"), accuracy, false, 1)) }
            guard !constraints.isEmpty, constraints.allSatisfy({ $0.law != nil }) else { continue }
            search: for step in 1...90 {
                let r = Double(step) / 100
                var predicted: [String: Double] = [:], intervals: [String] = []
                for constraint in constraints {
                    let (value, low, high) = constraint.law!.predictWithInterval(ratio: r, tokens: 0)
                    if constraint.atMost ? value > constraint.limit : value < constraint.limit { continue search }
                    predicted[constraint.name] = value * constraint.scale
                    intervals.append(String(format: "%@ %.4g [%.4g, %.4g] by its %@ law (R² %.3f)", constraint.name, value, low, high,
                                            constraint.law!.form.rawValue, constraint.law!.rSquared))
                }
                suggestions.append(Suggestion(base: "\(laws.base)@\(laws.baseRevision)", method: method, ratio: r, predicted: predicted,
                                              basis: "predicted by the compression laws fitted \(laws.createdAt): " + intervals.joined(separator: "; ")))
                break
            }
        }
        return suggestions
    }
}
