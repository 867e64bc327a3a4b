import ArgumentParser
import Evaluator
import Foundation
import HubCore
import Laws
import Registry
import Transformer

struct LawsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "laws",
        abstract: "Fit compression laws on a base's variants, show them, predict from them.",
        discussion: """
        For each compression method with enough measured variants, loss is fitted as a \\
        quadratic in the compression ratio r and accuracy as a line (points without \\
        fine-tuning), and both by the paper's law L = L0^α (1+r)^β (1 + 1/(D+ε))^γ in log \\
        space, D in millions of fine-tuning tokens (every point). Decode and prefill latency \\
        and peak memory are fitted as lines in r on one hardware profile. Each law comes \\
        with R², its residuals, leave-one-out errors and 95% bootstrap intervals.

        Examples:
          hubctl laws fit smollm2/SmolLM2-135M-Instruct --suite full
          hubctl laws show smollm2/SmolLM2-135M-Instruct
          hubctl laws predict smollm2/SmolLM2-135M-Instruct --method width-prune \\
            --ratio 0.25 --tokens 50000
          hubctl laws report smollm2/SmolLM2-135M-Instruct --suite full -o docs/laws

        A sweep can span machines: hubctl laws save-family writes the variants measured \
        here to a file, and fit and report take it back with --family on a registry that \
        holds the same base.
        """,
        subcommands: [Fit.self, Show.self, Predict.self, Report.self, SaveFamily.self])

    /// Saved families (hubctl laws save-family, or GET /api/models/{repo}/variants) whose
    /// variants join the fit.
    struct FamilyFiles: ParsableArguments {
        @Option(name: .customLong("family"), help: ArgumentHelp(
            "A family saved from another registry (hubctl laws save-family); its variants join the fit. Repeatable.",
            valueName: "file"))
        var files: [String] = []

        func members() throws -> [FamilyMember] {
            try files.flatMap { path -> [FamilyMember] in
                guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("--family \(path): no such file") }
                do { return try JSONDecoder().decode([FamilyMember].self, from: data) } catch {
                    throw ValidationError("--family \(path): not a saved family (a JSON array of family members, as hubctl laws save-family writes): \(error)")
                }
            }
        }
    }

    struct Fit: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fit every law the base's measured variants allow and store them in the registry.")
        @Argument(help: "The base, namespace/name[@revision].") var base: String
        @Option(help: "The evaluation suite whose loss and accuracy are fitted (smoke or full).") var suite = "full"
        @Option(help: "The BLAS threads of the latency profile (default: this machine's default).") var threads: Int?
        @Option(parsing: .upToNextOption, help: "Variants to leave out of the fit, kept to check predictions against (hubctl laws report compares them).")
        var holdOut: [String] = []
        @OptionGroup var family: FamilyFiles
        @Flag(help: "Print the law set as JSON (schemas/laws.schema.json).") var json = false
        @OptionGroup var data: DataDirectoryOption

        func run() throws {
            let (name, revision) = try LawsCommand.split(base)
            let here = HardwareProfile.current()
            let set = try data.open().fitLaws(base: name, revision: revision, suite: suite, cpuModel: here.cpuModel,
                                              blasThreads: threads ?? BLASThreads.count, blas: here.blas, holdOut: holdOut,
                                              imported: try family.members())
            if json { print(try Output.json(set)) } else { LawsCommand.describe(set) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the laws last fitted for a base.")
        @Argument(help: "The base, namespace/name[@revision].") var base: String
        @Option(help: "Only the laws fitted on this suite.") var suite: String?
        @Flag(help: "Print the law set as JSON.") var json = false
        @OptionGroup var data: DataDirectoryOption

        func run() throws {
            let (name, revision) = try LawsCommand.split(base)
            guard let set = try data.open().laws(base: name, revision: revision, suite: suite) else {
                throw ValidationError("no laws fitted for \(base) yet: run hubctl laws fit \(base)")
            }
            if json { print(try Output.json(set)) } else { LawsCommand.describe(set) }
        }
    }

    struct Predict: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Predict a variant's loss, accuracy, latency and memory before building it.",
            discussion: """
            Uses the laws last fitted for the base. Of the forms that hold at the asked \\
            budget (after fine-tuning only the paper's law, which knows D; without it also \\
            the polynomial forms), each metric is predicted by the one with the smallest \\
            leave-one-out error. Intervals are 95% from the bootstrap refits.
            """)
        @Argument(help: "The base, namespace/name[@revision].") var base: String
        @Option(help: "Compression ratio r, between 0 and 1.") var ratio: Double
        @Option(help: "Recovery fine-tuning tokens D.") var tokens = 0
        @Option(help: "The compression method (default: every method with laws).") var method: String?
        @Option(help: "The suite whose laws to use.") var suite: String?
        @Flag(help: "Print the predictions as JSON.") var json = false
        @OptionGroup var data: DataDirectoryOption

        struct Prediction: Encodable {
            let method: String
            let metric: String
            let form: String
            let value: Double
            let low: Double
            let high: Double
        }

        func run() throws {
            guard ratio >= 0, ratio < 1 else { throw ValidationError("--ratio \(ratio) is not in [0, 1)") }
            let (name, revision) = try LawsCommand.split(base)
            guard let set = try data.open().laws(base: name, revision: revision, suite: suite) else {
                throw ValidationError("no laws fitted for \(base) yet: run hubctl laws fit \(base)")
            }
            let methods = method.map { [$0] } ?? Array(Set(set.laws.map(\.method))).sorted()
            var predictions: [Prediction] = []
            for method in methods {
                for (metric, _) in FamilyLaws.metrics {
                    guard let law = set.bestLaw(metric, method: method, tokens: tokens) else { continue }
                    let (value, low, high) = law.predictWithInterval(ratio: ratio, tokens: tokens)
                    predictions.append(Prediction(method: method, metric: metric, form: law.form.rawValue, value: value, low: low, high: high))
                }
            }
            guard !predictions.isEmpty else {
                throw ValidationError("no law fitted for \(method ?? "any method") of \(base); hubctl laws show lists what was fitted")
            }
            if json { print(try Output.json(predictions)); return }
            print(String(format: "%@ at r = %.2f after %d fine-tuning tokens (laws of the %@ suite, fitted %@):", base, ratio, tokens,
                         set.suite, set.createdAt))
            for p in predictions {
                print(String(format: "  %-22@ %-12@ %10.4f  [%.4f, %.4f]  (%@)", p.method, p.metric, p.value, p.low, p.high, p.form))
            }
        }
    }

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the laws report: markdown and SVG plots setting this hub's findings against the paper's.",
            discussion: """
            From the laws last fitted for the base (nothing is refitted): is loss quadratic \\
            and accuracy linear in r (forms compared by leave-one-out error), how much of \\
            the loss fine-tuning wins back, the speed-up compression buys on this hardware, \\
            the critical ratios, the paper's joint law with its exponents, and every \\
            variant measured since the fit against what the laws predicted for it. To check \\
            a prediction: laws fit, build a variant at a new ratio, then laws report.

            The directory is replaced whole: README.md plus one SVG per metric.
            """)
        @Argument(help: "The base, namespace/name[@revision].") var base: String
        @Option(help: "The suite whose laws to report.") var suite = "full"
        @Option(name: .shortAndLong, help: "The directory to write (replaced whole).") var output: String
        @OptionGroup var family: FamilyFiles
        @OptionGroup var data: DataDirectoryOption

        func run() throws {
            let (name, revision) = try LawsCommand.split(base)
            let command = "hubctl laws report \(base) --suite \(suite)" + family.files.map { " --family \($0)" }.joined() + " -o \(output)"
            guard let report = try data.open().lawsReport(base: name, revision: revision, suite: suite, command: command,
                                                          imported: try family.members()) else {
                throw ValidationError("no laws fitted for \(base) on the \(suite) suite yet: run hubctl laws fit \(base) --suite \(suite)")
            }
            try LawsCommand.replaceDirectory(URL(fileURLWithPath: output), with: report.files)
            Output.progress("wrote \(report.files.count) files to \(output)")
        }
    }

    struct SaveFamily: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "save-family",
            abstract: "Save a base's family with every metrics record, for a fit on another machine (laws fit --family).",
            discussion: """
            Writes the base and each variant made from it (of a variant committed more than \
            once, the revision its main branch points at), with its lineage records and \
            measurements, in the form GET /api/models/{repo}/variants answers. The file is replaced \
            atomically. A registry holding the same base (the same weights) fits on it with \
            hubctl laws fit --family FILE; variants it measured itself take precedence.
            """)
        @Argument(help: "The base, namespace/name[@revision].") var base: String
        @Option(name: .shortAndLong, help: "The JSON file to write.") var output: String
        @OptionGroup var data: DataDirectoryOption

        func run() throws {
            let (name, revision) = try LawsCommand.split(base)
            let members = try data.open().currentFamily(of: name, revision: revision)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            try (try encoder.encode(members) + Data("\n".utf8)).write(to: URL(fileURLWithPath: output), options: .atomic)
            Output.progress("saved \(members.count - 1) variant(s) of \(base) to \(output)")
        }
    }

    /// Writes `files` into a fresh sibling directory, then swaps it for `directory`, so a
    /// reader sees the old report or the new one, never a mix.
    static func replaceDirectory(_ directory: URL, with files: [String: String]) throws {
        let manager = FileManager.default
        let parent = directory.deletingLastPathComponent()
        try manager.createDirectory(at: parent, withIntermediateDirectories: true)
        let staging = parent.appendingPathComponent(".\(directory.lastPathComponent).new-\(getpid())")
        let old = parent.appendingPathComponent(".\(directory.lastPathComponent).old-\(getpid())")
        try? manager.removeItem(at: staging)
        try manager.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            for (path, content) in files { try Data(content.utf8).write(to: staging.appendingPathComponent(path)) }
            if manager.fileExists(atPath: directory.path) { try manager.moveItem(at: directory, to: old) }
            try manager.moveItem(at: staging, to: directory)
            try? manager.removeItem(at: old)
        } catch {
            try? manager.removeItem(at: staging)
            if !manager.fileExists(atPath: directory.path), manager.fileExists(atPath: old.path) { try? manager.moveItem(at: old, to: directory) }
            throw error
        }
    }

    static func split(_ reference: String) throws -> (RepositoryName, String) {
        let parts = reference.split(separator: "@", maxSplits: 1).map(String.init)
        return (try RepositoryName(parts[0]), parts.count > 1 ? parts[1] : "main")
    }

    static func describe(_ set: LawSet) {
        print("laws of \(set.base)@\(set.baseRevision.prefix(10)), \(set.suite) suite, fitted \(set.createdAt)"
              + (set.profileDescription.map { " (latency on \($0))" } ?? ""))
        for law in set.laws {
            let coefficients = law.coefficients.map { String(format: "%@ %.4g [%.4g, %.4g]", $0.name, $0.value, $0.low, $0.high) }
            let loo = law.looMeanRelativeError.map { String(format: ", leave-one-out error %.1f%% (max %.1f%%)", $0 * 100, (law.looMaxRelativeError ?? 0) * 100) } ?? ""
            print(String(format: "%@ by %@, %@: R² %.4f over %d points%@", law.metric, law.method, law.form.rawValue, law.rSquared,
                         law.points.count, loo))
            print("    " + coefficients.joined(separator: ", ") + (law.alpha.map { String(format: ", alpha %.4g", $0) } ?? ""))
            if law.metric == "loss", let r10 = law.criticalRatio(sigma: 1.1) {
                print(String(format: "    loss up 10%% at r = %.3f", r10)
                      + (law.criticalRatio(sigma: 1.4).map { String(format: ", up 40%% at r = %.3f", $0) } ?? ""))
            }
        }
        for reason in set.skipped { print("not fitted: \(reason)") }
        if let heldOut = set.heldOut { print("held out of the fit: " + heldOut.joined(separator: ", ")) }
        if let imported = set.imported { print("measured in another registry (--family): \(imported.count) variant(s)") }
    }
}
