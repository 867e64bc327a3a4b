import Foundation

/// Ordinary least squares by Householder QR: stable where the normal equations are not (the
/// columns 1, r, r² over r in [0, 1] are close to collinear), and small enough to read.
public enum LeastSquares {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case tooFewPoints(points: Int, parameters: Int)
        case rankDeficient(column: Int)

        public var description: String {
            switch self {
            case .tooFewPoints(let points, let parameters): "\(points) points cannot determine \(parameters) parameters"
            case .rankDeficient(let column):
                "the data cannot separate parameter \(column) from the others (every point has the same value of it)"
            }
        }
    }

    /// The β minimising ‖Xβ − y‖² for rows `x` of X.
    public static func solve(_ x: [[Double]], _ y: [Double]) throws -> [Double] {
        let n = x.count, p = x.first?.count ?? 0
        guard n >= p, p > 0 else { throw Failure.tooFewPoints(points: n, parameters: p) }
        var a = x, b = y
        let scale = (0..<p).map { j in max(x.map { abs($0[j]) }.max() ?? 0, 1e-300) }
        for k in 0..<p {
            // The Householder vector that zeroes column k below the diagonal.
            var norm = 0.0
            for i in k..<n { norm += a[i][k] * a[i][k] }
            norm = norm.squareRoot()
            guard norm > 1e-12 * scale[k] * Double(n).squareRoot() else { throw Failure.rankDeficient(column: k) }
            let alpha = a[k][k] > 0 ? -norm : norm
            var v = [Double](repeating: 0, count: n)
            v[k] = a[k][k] - alpha
            for i in (k + 1)..<n { v[i] = a[i][k] }
            let vv = (k..<n).reduce(0.0) { $0 + v[$1] * v[$1] }
            guard vv > 0 else { continue }
            for j in k..<p {
                let dot = (k..<n).reduce(0.0) { $0 + v[$1] * a[$1][j] }
                for i in k..<n { a[i][j] -= 2 * dot / vv * v[i] }
            }
            let dot = (k..<n).reduce(0.0) { $0 + v[$1] * b[$1] }
            for i in k..<n { b[i] -= 2 * dot / vv * v[i] }
            if abs(a[k][k]) <= 1e-10 * scale[k] { throw Failure.rankDeficient(column: k) }
        }
        // Back substitution on the triangle R β = Qᵀy.
        var beta = [Double](repeating: 0, count: p)
        for k in stride(from: p - 1, through: 0, by: -1) {
            var sum = b[k]
            for j in (k + 1)..<p { sum -= a[k][j] * beta[j] }
            beta[k] = sum / a[k][k]
        }
        return beta
    }
}

/// A seeded generator (SplitMix64), so that bootstrap intervals are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The value below which `q` of `sorted` lies, interpolating between neighbours.
func quantile(_ sorted: [Double], _ q: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let position = q * Double(sorted.count - 1)
    let low = Int(position.rounded(.down)), high = min(low + 1, sorted.count - 1)
    return sorted[low] + (sorted[high] - sorted[low]) * (position - Double(low))
}
