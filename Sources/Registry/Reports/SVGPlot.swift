import Foundation
import Laws

/// A plain SVG scatter plot with fitted curves and interval bands, drawn by the daemon: no
/// script, no library. Every data point is a `<circle class="point">` carrying its values in
/// `data-*` attributes, so a test (or a reader of the page source) can check the plot holds
/// exactly what the API returns.
struct SVGPlot {
    struct Point {
        let x: Double
        let y: Double
        let label: String
        let series: String
        var attributes: [String: String] = [:]
    }

    struct Curve {
        let series: String
        let points: [(Double, Double)]
        var dashed = false
    }

    struct Band {
        let series: String
        let lower: [(Double, Double)]
        let upper: [(Double, Double)]
    }

    let title: String
    let xLabel: String
    let yLabel: String
    var points: [Point] = []
    var curves: [Curve] = []
    var bands: [Band] = []
    let width = 680.0, height = 340.0
    // The right margin holds the legend: a series name such as 'depth-prune-influence, D = 50k'.
    let left = 64.0, right = 250.0, top = 30.0, bottom = 48.0

    /// One colour per series, in the order the series first appear.
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]

    func render() -> String {
        let xs = points.map(\.x) + curves.flatMap { $0.points.map(\.0) }
        // The y range follows the points and curves; a wide interval band is clipped to the
        // plot rather than squashing the data into a corner.
        let ys = points.map(\.y) + curves.flatMap { $0.points.map(\.1) }
        let xRange = Self.niceRange(min: min(xs.min() ?? 0, 0), max: max(xs.max() ?? 1, 0.1))
        let yRange = Self.niceRange(min: ys.min() ?? 0, max: ys.max() ?? 1)
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func px(_ x: Double) -> Double { left + (x - xRange.0) / (xRange.1 - xRange.0) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - (y - yRange.0) / (yRange.1 - yRange.0) * plotHeight }
        let series = (points.map(\.series) + curves.map(\.series)).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        func colour(_ name: String) -> String { Self.palette[(series.firstIndex(of: name) ?? 0) % Self.palette.count] }

        // One id per plot: a page holds several plots, and ids must be unique in it.
        let clip = "area-" + String(title.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" })
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" class="plot" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(HTML.escape(title))">
            <title>\(HTML.escape(title))</title>
            <defs><clipPath id="\(clip)"><rect x="\(f(left))" y="\(f(top))" width="\(f(plotWidth))" height="\(f(plotHeight))"/></clipPath></defs>
            <rect x="\(f(left))" y="\(f(top))" width="\(f(plotWidth))" height="\(f(plotHeight))" fill="#fff" stroke="#888"/>

            """
        for tick in Self.ticks(xRange) {
            svg += "<line x1=\"\(f(px(tick)))\" y1=\"\(f(top + plotHeight))\" x2=\"\(f(px(tick)))\" y2=\"\(f(top + plotHeight + 5))\" stroke=\"#888\"/>"
            svg += "<text x=\"\(f(px(tick)))\" y=\"\(f(top + plotHeight + 18))\" font-size=\"11\" text-anchor=\"middle\">\(Self.label(tick))</text>\n"
        }
        for tick in Self.ticks(yRange) {
            svg += "<line x1=\"\(f(left - 5))\" y1=\"\(f(py(tick)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py(tick)))\" stroke=\"#eee\"/>"
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(py(tick) + 4))\" font-size=\"11\" text-anchor=\"end\">\(Self.label(tick))</text>\n"
        }
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 10))\" font-size=\"12\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>\n"
        svg += "<text x=\"14\" y=\"\(f(top + plotHeight / 2))\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(f(top + plotHeight / 2)))\">\(HTML.escape(yLabel))</text>\n"
        for band in bands {
            let outline = band.lower.map { "\(f(px($0.0))),\(f(py($0.1)))" } + band.upper.reversed().map { "\(f(px($0.0))),\(f(py($0.1)))" }
            svg += "<polygon class=\"band\" clip-path=\"url(#\(clip))\" data-series=\"\(HTML.escape(band.series))\" points=\"\(outline.joined(separator: " "))\" fill=\"\(colour(band.series))\" fill-opacity=\"0.12\" stroke=\"none\"/>\n"
        }
        for curve in curves {
            let path = curve.points.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
            svg += "<polyline class=\"curve\" clip-path=\"url(#\(clip))\" data-series=\"\(HTML.escape(curve.series))\" points=\"\(path)\" fill=\"none\" stroke=\"\(colour(curve.series))\" stroke-width=\"1.8\"\(curve.dashed ? " stroke-dasharray=\"5 4\"" : "")/>\n"
        }
        for point in points {
            let extra = point.attributes.sorted { $0.key < $1.key }.map { " data-\($0.key)=\"\(HTML.escape($0.value))\"" }.joined()
            svg += "<circle class=\"point\" cx=\"\(f(px(point.x)))\" cy=\"\(f(py(point.y)))\" r=\"4\" fill=\"\(colour(point.series))\" "
                + "data-series=\"\(HTML.escape(point.series))\" data-x=\"\(point.x)\" data-y=\"\(point.y)\"\(extra)>"
                + "<title>\(HTML.escape(point.label))</title></circle>\n"
        }
        for (index, name) in series.enumerated() {
            let y = top + 14 + Double(index) * 16
            svg += "<rect x=\"\(f(left + plotWidth + 12))\" y=\"\(f(y - 8))\" width=\"10\" height=\"10\" fill=\"\(colour(name))\"/>"
            svg += "<text x=\"\(f(left + plotWidth + 26))\" y=\"\(f(y + 1))\" font-size=\"11\">\(HTML.escape(name))</text>\n"
        }
        return svg + "</svg>"
    }

    private func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func niceRange(min low: Double, max high: Double) -> (Double, Double) {
        guard low.isFinite, high.isFinite else { return (0, 1) }
        // A flat series (a constant fitted with rounding noise) gets a span around its value.
        let scale = Swift.max(abs(low), abs(high), 1)
        guard high - low > 1e-6 * scale else { return (low - 0.05 * scale, high + 0.05 * scale) }
        let pad = (high - low) * 0.06
        return (low - pad, high + pad)
    }

    static func ticks(_ range: (Double, Double)) -> [Double] {
        let span = range.1 - range.0
        let raw = span / 5, magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        guard step.isFinite, step > 0 else { return [] }
        let first = ceil(range.0 / step)
        return (0..<12).map { (first + Double($0)) * step }.filter { $0 <= range.1 + step * 1e-9 }
    }

    static func label(_ value: Double) -> String {
        abs(value) >= 100 ? String(format: "%.0f", value) : abs(value) >= 10 ? String(format: "%.1f", value) : String(format: "%.2f", value)
    }
}

/// The plots of a law set, shared by the daemon's laws page and `hubctl laws report`.
enum LawPlot {
    static func metricLabel(_ metric: String) -> String {
        switch metric {
        case "loss": "Held-out loss"
        case "accuracy": "Mean task accuracy"
        case "decode_ms": "Decode latency (ms per token, p50)"
        case "prefill_ms": "Prefill latency (ms, longest prompt, p50)"
        default: "Peak memory (MB)"
        }
    }

    /// One plot per metric: every method's points and curves together, and `extra` points
    /// (variants measured after the fit, drawn as their own series).
    static func render(_ metric: String, _ laws: [FittedLaw], extra: [SVGPlot.Point] = []) -> String {
        var plot = SVGPlot(title: metricLabel(metric), xLabel: "compression ratio r", yLabel: metricLabel(metric))
        let grid = (0...40).map { Double($0) / 40 * 0.9 }
        var seen = Set<String>()
        for law in laws {
            for point in law.points where seen.insert("\(law.method)|\(point.repository)").inserted {
                let series = point.tokens > 0 ? "\(law.method), D = \(point.tokens / 1000)k" : law.method
                plot.points.append(.init(x: point.ratio, y: point.value, label: "\(point.repository): \(point.value)", series: series,
                                         attributes: ["repository": point.repository, "tokens": "\(point.tokens)", "method": law.method]))
            }
            let budgets = law.form == .paper ? Array(Set(law.points.map(\.tokens))).sorted() : [0]
            let reach = max(law.points.map(\.ratio).max() ?? 0.5, 0.1) * 1.15
            let xs = grid.filter { $0 <= reach }
            for tokens in budgets {
                let series = tokens > 0 ? "\(law.method), D = \(tokens / 1000)k" : law.method
                plot.curves.append(.init(series: series, points: xs.map { ($0, law.predict(ratio: $0, tokens: tokens)) }, dashed: law.form == .paper))
                if law.form == .paper {
                    let intervals = xs.map { ($0, law.predictWithInterval(ratio: $0, tokens: tokens)) }
                    plot.bands.append(.init(series: series, lower: intervals.map { ($0.0, $0.1.low) }, upper: intervals.map { ($0.0, $0.1.high) }))
                }
            }
        }
        plot.points += extra
        return plot.render()
    }

}

enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// A whole page: a title, a small stylesheet, a header with the site's links, the body.
    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(title)) · Compression Hub</title>
        <style>
        body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 980px; color: #222; }
        table { border-collapse: collapse; margin: 0.6em 0 1.2em; } td, th { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }
        th { background: #f4f4f4; } code { font-size: 90%; } nav a { margin-right: 1em; } .muted { color: #777; }
        .state-succeeded { color: #2a7; } .state-failed { color: #c33; } .state-running { color: #27c; }
        </style></head>
        <body><nav><a href="/-/">Models</a><a href="/-/builds">Build queue</a></nav>
        <h1>\(escape(title))</h1>
        \(body)
        </body></html>
        """
    }

    static func table(_ header: [String], _ rows: [[String]], id: String? = nil) -> String {
        "<table\(id.map { " id=\"\($0)\"" } ?? "")><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
            + rows.map { "<tr>" + $0.map { "<td>\($0)</td>" }.joined() + "</tr>" }.joined(separator: "\n") + "</table>"
    }
}
