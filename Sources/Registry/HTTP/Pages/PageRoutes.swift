import Builds
import Foundation
import HTTPTypes
import HubCore
import Hummingbird
import Laws
import NIOCore

/// Pages for people, rendered by the daemon as plain HTML and SVG under `/-/` (a prefix no
/// repository namespace can take, so these never shadow the Hub protocol's routes):
///
/// - `/-/`: every model the reader may see.
/// - `/-/models/{repo}`: a model's card, files, metrics and lineage graph.
/// - `/-/laws/{repo}`: the laws last fitted for a base, plotted with their points and intervals.
/// - `/-/builds`: the build queue.
///
/// They read through the same services as the API, so a private repository is shown only to
/// a request with a token.
struct PageRoutes: Sendable {
    let service: ModelReadService
    let registry: HubRegistry
    let auth: Authenticator

    func add(to router: Router<BasicRequestContext>) {
        router.get("/-/") { request, _ in try html(index(reader: auth.token(for: request))) }
        router.get("/-/models/:namespace/:name") { request, context in
            try html(model(HubServer.repository(context), reader: auth.token(for: request)))
        }
        router.get("/-/laws/:namespace/:name") { request, context in
            try html(laws(HubServer.repository(context), reader: auth.token(for: request)))
        }
        router.get("/-/builds") { request, _ in try html(builds(reader: auth.token(for: request))) }
    }

    func html(_ page: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: page)))
    }

    static func link(_ repository: String, _ text: String? = nil) -> String {
        "<a href=\"/-/models/\(HTML.escape(repository))\">\(HTML.escape(text ?? repository))</a>"
    }

    func index(reader: AccessToken?) throws -> String {
        let models = try service.list(search: nil, after: nil, limit: 1000, reader: reader).models
        let rows = models.map { model -> [String] in
            let id = model["id"] as? String ?? ""
            return [Self.link(id), "<code>\(HTML.escape(String((model["sha"] as? String ?? "").prefix(10))))</code>",
                    HTML.escape(model["lastModified"] as? String ?? "")]
        }
        return HTML.page(title: "Models", body: HTML.table(["repository", "main", "last modified"], rows, id: "models"))
    }

    func model(_ repository: String, reader: AccessToken?) throws -> String {
        let card = try service.card(repository: repository, revision: "main", reader: reader)
        let chain = try service.lineage(repository: repository, revision: "main", reader: reader)
        var body = "<p>\(HTML.escape(card.kind.rawValue)) model, revision <code>\(card.revision)</code> by \(HTML.escape(card.author)), "
            + "\(HTML.escape(card.createdAt)): \(HTML.escape(card.message))</p>\n"
        body += HTML.table(["architecture", "parameters", "bytes", "layers", "hidden", "intermediate"], [[
            HTML.escape(card.architecture), "\(card.parameters.total)", "\(card.bytes)", card.shape.map { "\($0.layers)" } ?? "-",
            card.shape.map { "\($0.hiddenSize)" } ?? "-",
            card.shape.map { "\($0.intermediateSize)\($0.heterogeneous ? " (varies by block)" : "")" } ?? "-",
        ]], id: "card")
        if card.kind == .base { body += "<p><a href=\"/-/laws/\(HTML.escape(repository))\">Compression laws of this base</a></p>\n" }
        body += "<h2>Lineage</h2>\n" + lineageGraph(chain)
        body += "<h2>Metrics</h2>\n" + HTML.table(["suite", "held-out loss", "CPU", "BLAS threads", "measured"], card.metrics.map {
            [HTML.escape($0.suite), $0.crossEntropy.map { String(format: "%.4f", $0) } ?? "-", HTML.escape($0.cpuModel), "\($0.blasThreads)",
             HTML.escape($0.createdAt)]
        }, id: "metrics")
        body += "<h2>Files</h2>\n" + HTML.table(["path", "size", "sha256"], card.files.map {
            ["<a href=\"/\(HTML.escape(repository))/resolve/\(card.revision)/\(HTML.escape($0.path))\">\(HTML.escape($0.path))</a>",
             "\($0.size)", "<code>\($0.sha256.hex.prefix(16))…</code>"]
        }, id: "files")
        return HTML.page(title: repository, body: body)
    }

    /// The chain from the model back to its base, drawn top to bottom, each edge labelled
    /// with what made the child: the compression method and ratio, or the fine-tune.
    func lineageGraph(_ chain: [LineageNode]) -> String {
        // Boxes as wide as the longest name needs, at about 7.5 px a character of 13 px text.
        func caption(_ node: LineageNode) -> String { "\(node.repository)@\(node.revision.prefix(8)) (\(node.parameters / 1000)k parameters)" }
        let boxWidth = max(360, Double(chain.map { caption($0).count }.max() ?? 0) * 7.5 + 24), boxHeight = 34.0, gap = 40.0
        let height = Double(chain.count) * (boxHeight + gap)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lineage\" width=\"\(Int(max(720, boxWidth + 10)))\" height=\"\(Int(height))\">\n"
        for (index, node) in chain.enumerated() {
            let y = Double(index) * (boxHeight + gap) + 4
            svg += "<a href=\"/-/models/\(HTML.escape(node.repository))\"><rect class=\"node\" data-repository=\"\(HTML.escape(node.repository))\" "
                + "x=\"4\" y=\"\(y)\" width=\"\(boxWidth)\" height=\"\(boxHeight)\" rx=\"5\" fill=\"#eef4fb\" stroke=\"#4a7ab8\"/>"
                + "<text x=\"14\" y=\"\(y + 21)\" font-size=\"13\">\(HTML.escape(caption(node)))</text></a>\n"
            if let record = node.record, index + 1 < chain.count {
                let label: String
                if let method = record["method"]?.stringValue, record["base_checkpoint_sha256"] != nil {
                    let ratio: String = if case .number(let r)? = record["achieved_ratio"] { String(format: "r = %.3f", r) } else { "" }
                    label = "compressed by \(method) \(ratio)"
                } else if case .number(let tokens)? = record["tokens"] {
                    label = "fine-tuned on \(Int(tokens)) tokens (\(record["loss"]?.stringValue ?? "?"))"
                } else {
                    label = "derived"
                }
                let y0 = y + boxHeight, y1 = y + boxHeight + gap
                svg += "<line x1=\"40\" y1=\"\(y1)\" x2=\"40\" y2=\"\(y0 + 2)\" stroke=\"#4a7ab8\" stroke-width=\"1.5\"/>"
                    + "<polygon points=\"35,\(y0 + 9) 45,\(y0 + 9) 40,\(y0 + 1)\" fill=\"#4a7ab8\"/>"
                    + "<text class=\"edge\" x=\"52\" y=\"\(y0 + gap / 2 + 4)\" font-size=\"12\">\(HTML.escape(label))</text>\n"
            }
        }
        return svg + "</svg>"
    }

    func laws(_ repository: String, reader: AccessToken?) throws -> String {
        let card = try service.card(repository: repository, revision: "main", reader: reader)
        guard let set = try registry.laws(base: RepositoryName(repository), revision: card.revision) else {
            return HTML.page(title: "Compression laws of \(repository)", body: "<p id=\"no-laws\">No laws fitted yet: run "
                             + "<code>hubctl laws fit \(HTML.escape(repository))</code> once variants are built and evaluated.</p>")
        }
        var body = "<p>Fitted \(HTML.escape(set.createdAt)) on the \(HTML.escape(set.suite)) suite of "
            + "\(Self.link(repository))'s variants. Points are measured variants (the base is r = 0); solid lines are the "
            + "polynomial forms (no fine-tuning), dashed lines the paper's law L = L0<sup>α</sup>(1+r)<sup>β</sup>(1+1/(D+ε))<sup>γ</sup> "
            + "at each fine-tuning budget D, shaded bands its 95% bootstrap interval."
            + (set.profileDescription.map { " Latency and memory are this hardware profile's: \(HTML.escape($0)).</p>\n" } ?? "</p>\n")
        for metric in ["loss", "accuracy", "decode_ms", "prefill_ms", "peak_rss_mb"] {
            let laws = set.laws.filter { $0.metric == metric }
            guard !laws.isEmpty else { continue }
            body += "<h2>\(HTML.escape(LawPlot.metricLabel(metric)))</h2>\n" + LawPlot.render(metric, laws)
            body += HTML.table(["method", "form", "coefficients (95% interval)", "R²", "leave-one-out error", "points"], laws.map { law in
                [HTML.escape(law.method), law.form.rawValue,
                 law.coefficients.map { String(format: "%@ = %.4g [%.4g, %.4g]", $0.name, $0.value, $0.low, $0.high) }.joined(separator: "<br>")
                    + (law.alpha.map { String(format: "<br>α = %.4g", $0) } ?? ""),
                 String(format: "%.4f", law.rSquared),
                 law.looMeanRelativeError.map { String(format: "%.2f%% (max %.2f%%)", $0 * 100, (law.looMaxRelativeError ?? 0) * 100) } ?? "-",
                 "\(law.points.count)"]
            }, id: "laws-\(metric)")
        }
        if !set.skipped.isEmpty {
            body += "<h2>Not fitted</h2><ul>" + set.skipped.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul>"
        }
        return HTML.page(title: "Compression laws of \(repository)", body: body)
    }

    func builds(reader: AccessToken?) throws -> String {
        let all = try registry.store.builds(states: nil, limit: 200)
        // Anonymous readers see builds of public repositories only.
        let visible = try all.filter { build in
            guard reader == nil else { return true }
            for name in [build.recipe.base.split(separator: "@").first.map(String.init) ?? "", build.recipe.name] {
                if let repository = try registry.store.repository(RepositoryName(name)), repository.isPrivate { return false }
            }
            return true
        }
        let rows = visible.map { build -> [String] in
            ["<code>\(build.id)</code>", "<span class=\"state-\(build.state.rawValue)\">\(build.state.rawValue)</span>",
             HTML.escape(build.recipe.name), "\(build.recipe.expanded().count)",
             build.result.variants.map { Self.link($0.repository) }.joined(separator: ", "),
             "\(build.result.stagesRun) run, \(build.result.stagesReused) cached", HTML.escape(build.createdAt),
             HTML.escape(build.error ?? "")]
        }
        return HTML.page(title: "Build queue", body: HTML.table(
            ["build", "state", "name", "variants", "registered", "stages", "queued", "error"], rows, id: "builds"))
    }
}
