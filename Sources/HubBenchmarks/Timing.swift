import Foundation

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Median wall time of `repetitions` runs of `body`, in seconds.
func time(_ repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0 ..< repetitions {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return median(samples)
}

/// Shortest wall time of `repetitions` runs of `body`, in seconds (for baselines: the
/// machine's best, so ratios against it are conservative).
func fastest(_ repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0 ..< repetitions { best = min(best, try time(1, body)) }
    return best
}
