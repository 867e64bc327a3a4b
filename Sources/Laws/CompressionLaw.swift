import Foundation

/// One measured variant as the laws see it: how much it was compressed, how much it was
/// fine-tuned, and what it measured. The base is the point r = 0, D = 0 of every method.
public struct LawPoint: Codable, Sendable, Equatable {
    public let repository: String
    public let method: String
    /// Compression ratio: 1 − parameters / the base's parameters.
    public let ratio: Double
    /// Recovery fine-tuning tokens (0: none).
    public let tokens: Int
    public let value: Double

    public init(repository: String, method: String, ratio: Double, tokens: Int, value: Double) {
        self.repository = repository
        self.method = method
        self.ratio = ratio
        self.tokens = tokens
        self.value = value
    }
}

/// The forms a law can take.
public enum LawForm: String, Codable, Sendable, CaseIterable {
    /// y = a + b·r + c·r² (test loss against r, at one fine-tuning budget).
    case quadratic
    /// y = a + b·r (accuracy, latency or memory against r).
    case linear
    /// The paper's law: y = L0^α · (1 + r)^β · (1 + 1/(D + ε))^γ, fitted by least squares in
    /// log space. D is in millions of tokens. With one base, L0^α is a constant: α is reported
    /// as that constant's log over log L0. Without two fine-tuning budgets γ is left out.
    case paper

    public var parameterNames: [String] {
        switch self {
        case .quadratic: ["a", "b", "c"]
        case .linear: ["a", "b"]
        case .paper: ["log_c", "beta", "gamma"]
        }
    }
}

/// A coefficient with its 95% bootstrap interval.
public struct Coefficient: Codable, Sendable, Equatable {
    public let name: String
    public let value: Double
    public let low: Double
    public let high: Double
}

/// A fitted law with everything needed to judge it and to predict from it.
public struct FittedLaw: Codable, Sendable, Equatable {
    public let metric: String
    public let method: String
    public let form: LawForm
    /// ε of the paper's form, in millions of tokens.
    public let epsilon: Double
    public let coefficients: [Coefficient]
    /// α of the paper's form: log(constant) / log(L0); nil for the other forms.
    public let alpha: Double?
    /// 1 − SS_res / SS_tot, on the metric itself (not its log).
    public let rSquared: Double
    /// Observed − predicted, per point, in the order of `points`.
    public let residuals: [Double]
    /// Leave-one-out: each point predicted by the law fitted without it; the mean and largest
    /// absolute error relative to the observed value.
    public let looMeanRelativeError: Double?
    public let looMaxRelativeError: Double?
    public let bootstrapSamples: Int
    public let points: [LawPoint]

    /// The metric predicted at ratio r after D fine-tuning tokens.
    public func predict(ratio: Double, tokens: Int) -> Double {
        Self.evaluate(form, coefficients.map(\.value), ratio: ratio, tokens: tokens, epsilon: epsilon)
    }

    /// The prediction with its 95% interval from the bootstrap refits.
    public func predictWithInterval(ratio: Double, tokens: Int) -> (value: Double, low: Double, high: Double) {
        let samples = bootstrap.map { Self.evaluate(form, $0, ratio: ratio, tokens: tokens, epsilon: epsilon) }.sorted()
        let value = predict(ratio: ratio, tokens: tokens)
        guard samples.count >= 20 else { return (value, value, value) }
        return (value, quantile(samples, 0.025), quantile(samples, 0.975))
    }

    /// The ratio at which the metric reaches σ times its value at r = 0 (same D): for the
    /// paper's form r_crit(σ) = σ^(1/β) − 1; for a polynomial, the smallest root in (0, 1].
    public func criticalRatio(sigma: Double, tokens: Int = 0) -> Double? {
        if form == .paper {
            guard let beta = coefficients.first(where: { $0.name == "beta" })?.value, beta != 0 else { return nil }
            let r = pow(sigma, 1 / beta) - 1
            return r > 0 ? r : nil
        }
        let target = sigma * predict(ratio: 0, tokens: tokens)
        var low = 0.0, previous = predict(ratio: 0, tokens: tokens) - target
        for step in 1...1000 {
            let r = Double(step) / 1000, current = predict(ratio: r, tokens: tokens) - target
            if previous == 0 { return low }
            if previous.sign != current.sign {
                var (a, b) = (low, r)
                for _ in 0..<60 {
                    let mid = (a + b) / 2
                    if (predict(ratio: mid, tokens: tokens) - target).sign == previous.sign { a = mid } else { b = mid }
                }
                return (a + b) / 2
            }
            (low, previous) = (r, current)
        }
        return nil
    }

    /// Every bootstrap refit's coefficients: what prediction intervals are drawn from.
    public var bootstrap: [[Double]] = []

    enum CodingKeys: String, CodingKey {
        case metric, method, form, epsilon, coefficients, alpha, rSquared = "r_squared", residuals
        case looMeanRelativeError = "loo_mean_relative_error", looMaxRelativeError = "loo_max_relative_error"
        case bootstrapSamples = "bootstrap_samples", points, bootstrap = "bootstrap_coefficients"
    }

    static func design(_ form: LawForm, ratio: Double, tokens: Int, epsilon: Double, withGamma: Bool) -> [Double] {
        switch form {
        case .quadratic: return [1, ratio, ratio * ratio]
        case .linear: return [1, ratio]
        case .paper:
            let d = Double(tokens) / 1e6
            return withGamma ? [1, log(1 + ratio), log(1 + 1 / (d + epsilon))] : [1, log(1 + ratio)]
        }
    }

    static func evaluate(_ form: LawForm, _ beta: [Double], ratio: Double, tokens: Int, epsilon: Double) -> Double {
        let row = design(form, ratio: ratio, tokens: tokens, epsilon: epsilon, withGamma: beta.count == 3 && form == .paper)
        let linear = zip(row, beta).reduce(0) { $0 + $1.0 * $1.1 }
        return form == .paper ? exp(linear) : linear
    }
}

/// Fits laws to points: least squares, R² on the metric, leave-one-out errors and a seeded
/// case bootstrap for 95% intervals.
public struct LawFitter: Sendable {
    public var epsilon = 0.01
    public var bootstrapSamples = 1000
    public var seed: UInt64 = 16

    public init() {}

    public func fit(_ points: [LawPoint], form: LawForm, metric: String, method: String) throws -> FittedLaw {
        let withGamma = form == .paper && Set(points.map(\.tokens)).count >= 2
        if form == .paper, let bad = points.first(where: { $0.value <= 0 }) { throw FitError.nonPositive(bad.repository) }
        let beta = try coefficients(points, form: form, withGamma: withGamma)
        let predicted = points.map { FittedLaw.evaluate(form, beta, ratio: $0.ratio, tokens: $0.tokens, epsilon: epsilon) }
        let residuals = zip(points, predicted).map { $0.value - $1 }
        let mean = points.map(\.value).reduce(0, +) / Double(points.count)
        let total = points.reduce(0) { $0 + ($1.value - mean) * ($1.value - mean) }
        let rSquared = total > 0 ? 1 - residuals.reduce(0) { $0 + $1 * $1 } / total : 1

        var looErrors: [Double] = []
        for held in points.indices {
            var rest = points
            rest.remove(at: held)
            guard let refit = try? coefficients(rest, form: form, withGamma: withGamma) else { continue }
            let point = points[held]
            let guess = FittedLaw.evaluate(form, refit, ratio: point.ratio, tokens: point.tokens, epsilon: epsilon)
            looErrors.append(abs(guess - point.value) / abs(point.value))
        }

        var generator = SeededGenerator(state: seed)
        var samples: [[Double]] = []
        for _ in 0..<bootstrapSamples {
            let resample = (0..<points.count).map { _ in points[Int.random(in: 0..<points.count, using: &generator)] }
            if let refit = try? coefficients(resample, form: form, withGamma: withGamma) { samples.append(refit) }
        }
        var names = form.parameterNames
        if form == .paper, !withGamma { names.removeLast() }
        let intervals = names.indices.map { j -> Coefficient in
            let values = samples.map { $0[j] }.sorted()
            return Coefficient(name: names[j], value: beta[j], low: values.isEmpty ? beta[j] : quantile(values, 0.025),
                               high: values.isEmpty ? beta[j] : quantile(values, 0.975))
        }
        let base = points.first { $0.ratio == 0 && $0.tokens == 0 }?.value
        var law = FittedLaw(metric: metric, method: method, form: form, epsilon: epsilon, coefficients: intervals,
                            alpha: form == .paper ? base.flatMap { log($0) != 0 ? beta[0] / log($0) : nil } : nil,
                            rSquared: rSquared, residuals: residuals,
                            looMeanRelativeError: looErrors.isEmpty ? nil : looErrors.reduce(0, +) / Double(looErrors.count),
                            looMaxRelativeError: looErrors.max(), bootstrapSamples: samples.count, points: points)
        law.bootstrap = samples
        return law
    }

    func coefficients(_ points: [LawPoint], form: LawForm, withGamma: Bool) throws -> [Double] {
        let rows = points.map { FittedLaw.design(form, ratio: $0.ratio, tokens: $0.tokens, epsilon: epsilon, withGamma: withGamma) }
        let targets = points.map { form == .paper ? log($0.value) : $0.value }
        return try LeastSquares.solve(rows, targets)
    }

    public enum FitError: Error, CustomStringConvertible {
        case nonPositive(String)
        public var description: String {
            switch self { case .nonPositive(let name): "\(name): the paper's law needs positive values (it is fitted in log space)" }
        }
    }
}
