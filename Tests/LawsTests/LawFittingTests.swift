import Foundation
@testable import Laws
import Testing

@Suite("Compression laws: least squares, forms, leave-one-out, bootstrap")
struct LawFittingTests {
    static func points(_ ratios: [Double], _ values: [Double], tokens: [Int]? = nil) -> [LawPoint] {
        ratios.indices.map { i in
            LawPoint(repository: "t/v\(i)", method: i == 0 ? "" : "m", ratio: ratios[i], tokens: tokens?[i] ?? 0, value: values[i])
        }
    }

    @Test("the quadratic and the paper's law match numpy's least squares on the same points (reference values from numpy 1.x)")
    func parityWithNumPy() throws {
        // numpy.polyfit(r, y, 2) and numpy.linalg.lstsq on the paper's design, computed once.
        let quadratic = try LawFitter().fit(Self.points([0, 0.1, 0.2, 0.3, 0.5, 0.7], [3.25, 3.61, 4.02, 4.51, 5.93, 7.88]),
                                            form: .quadratic, metric: "loss", method: "m")
        for (got, want) in zip(quadratic.coefficients.map(\.value), [3.2808873239436624, 2.358450704225346, 5.988028169014103]) {
            #expect(abs(got - want) < 1e-9 * max(1, abs(want)))
        }
        #expect(abs(quadratic.rSquared - 0.9997323314922326) < 1e-12)
        let paper = try LawFitter().fit(Self.points([0, 0.1, 0.3, 0.5, 0.3, 0.3, 0.2, 0.5], [3.25, 3.70, 4.51, 6.00, 4.12, 3.96, 4.05, 5.10],
                                                    tokens: [0, 0, 0, 0, 50000, 250000, 0, 50000]),
                                        form: .paper, metric: "loss", method: "m")
        for (got, want) in zip(paper.coefficients.map(\.value), [0.8828594391264409, 1.447672933689665, 0.060100670433306726]) {
            #expect(abs(got - want) < 1e-9 * max(1, abs(want)))
        }
        #expect(abs(paper.rSquared - 0.9762018645755485) < 1e-10)
        #expect(paper.alpha.map { abs($0 - 0.8828594391264409 / log(3.25)) < 1e-12 } == true)
    }

    @Test("exact data is recovered exactly, with zero leave-one-out error; the critical ratio inverts the law")
    func exactRecovery() throws {
        let ratios = [0, 0.1, 0.2, 0.3, 0.5, 0.7]
        let loss = try LawFitter().fit(Self.points(ratios, ratios.map { 3 + 0.5 * $0 + 4 * $0 * $0 }), form: .quadratic, metric: "loss", method: "m")
        #expect(loss.rSquared > 1 - 1e-12 && (loss.looMaxRelativeError ?? 1) < 1e-10)
        #expect(abs(loss.predict(ratio: 0.4, tokens: 0) - (3 + 0.2 + 0.64)) < 1e-10)
        // 3 + 0.5 r + 4 r² = 3.3  →  r = (−0.5 + √(0.25 + 4.8)) / 8
        let expected = (-0.5 + (0.25 + 4.8).squareRoot()) / 8
        #expect(abs(loss.criticalRatio(sigma: 1.1)! - expected) < 1e-9)

        // The paper's form: β and γ come back, and r_crit(σ) = σ^(1/β) − 1.
        let tokens = [0, 0, 0, 0, 50000, 250000, 1_000_000, 50000]
        let rs = [0, 0.1, 0.3, 0.5, 0.3, 0.3, 0.3, 0.5]
        let law = { (r: Double, d: Int) in exp(1.2) * pow(1 + r, 2.5) * pow(1 + 1 / (Double(d) / 1e6 + 0.01), 0.04) }
        let paper = try LawFitter().fit(Self.points(rs, zip(rs, tokens).map(law), tokens: tokens), form: .paper, metric: "loss", method: "m")
        #expect(paper.coefficients.map(\.name) == ["log_c", "beta", "gamma"])
        #expect(abs(paper.coefficients[1].value - 2.5) < 1e-9 && abs(paper.coefficients[2].value - 0.04) < 1e-9)
        #expect(abs(paper.criticalRatio(sigma: 1.5)! - (pow(1.5, 1 / 2.5) - 1)) < 1e-9)
        #expect(abs(paper.predict(ratio: 0.2, tokens: 100_000) - law(0.2, 100_000)) < 1e-9)
    }

    @Test("bootstrap intervals are seeded, cover the truth on noisy data, and carry into predictions; degenerate data is refused")
    func bootstrap() throws {
        var generator = SeededGenerator(state: 7)
        let ratios = (0..<12).map { Double($0) / 16 }
        let values = ratios.map { 0.6 - 0.4 * $0 + Double.random(in: -0.01...0.01, using: &generator) }
        let first = try LawFitter().fit(Self.points(ratios, values), form: .linear, metric: "accuracy", method: "m")
        let second = try LawFitter().fit(Self.points(ratios, values), form: .linear, metric: "accuracy", method: "m")
        #expect(first == second && first.bootstrapSamples == 1000)
        let slope = first.coefficients[1]
        #expect(slope.low < -0.4 && -0.4 < slope.high && slope.high - slope.low < 0.1)
        let (value, low, high) = first.predictWithInterval(ratio: 0.9, tokens: 0)
        #expect(low < value && value < high)
        // A stored law predicts with the same interval.
        let decoded = try JSONDecoder().decode(FittedLaw.self, from: JSONEncoder().encode(first))
        #expect(decoded.predictWithInterval(ratio: 0.9, tokens: 0) == first.predictWithInterval(ratio: 0.9, tokens: 0))

        #expect(throws: LeastSquares.Failure.self) {
            try LawFitter().fit(Self.points([0.3, 0.3, 0.3], [1, 2, 3]), form: .linear, metric: "loss", method: "m")
        }
        #expect(throws: LeastSquares.Failure.tooFewPoints(points: 2, parameters: 3)) {
            try LeastSquares.solve([[1, 0, 0], [1, 1, 1]], [1, 2])
        }
    }
}
