import Foundation
import HubCore

/// What a build makes: a base revision, a compression, and an evaluation, registered as a
/// variant. Its JSON form is `schemas/build-recipe.schema.json`. A recipe with a `sweep`
/// instead of a `compression` stands for the grid of methods × ratios, one variant each.
public struct BuildRecipe: Codable, Sendable, Equatable {
    public struct Compression: Codable, Sendable, Equatable {
        public var method: String
        public var ratio: Double
        /// Calibration tokens for methods that calibrate (default: the method's own).
        public var calibrationTokens: Int?

        public init(method: String, ratio: Double, calibrationTokens: Int? = nil) {
            self.method = method
            self.ratio = ratio
            self.calibrationTokens = calibrationTokens
        }

        enum CodingKeys: String, CodingKey { case method, ratio, calibrationTokens = "calibration_tokens" }
    }

    public struct Sweep: Codable, Sendable, Equatable {
        public var methods: [String]
        public var ratios: [Double]

        public init(methods: [String], ratios: [Double]) {
            self.methods = methods
            self.ratios = ratios
        }
    }

    public struct Evaluation: Codable, Sendable, Equatable {
        /// smoke or full.
        public var suite: String
        public var latency: Bool

        public init(suite: String = "smoke", latency: Bool = true) {
            self.suite = suite
            self.latency = latency
        }
    }

    public var schemaVersion = 1
    /// The base, as namespace/name[@revision].
    public var base: String
    /// The repository the variant is committed to; a sweep appends `-<method>-<ratio×100>`.
    public var name: String
    public var compression: Compression?
    public var sweep: Sweep?
    public var evaluation: Evaluation

    public init(base: String, name: String, compression: Compression? = nil, sweep: Sweep? = nil, evaluation: Evaluation = Evaluation()) {
        self.base = base
        self.name = name
        self.compression = compression
        self.sweep = sweep
        self.evaluation = evaluation
    }

    enum CodingKeys: String, CodingKey { case schemaVersion = "schema_version", base, name, compression, sweep, evaluation }

    /// Decodes and validates a recipe, naming the field that is wrong.
    public static func decode(_ data: Data, knownMethods: [String]) throws -> BuildRecipe {
        let recipe: BuildRecipe
        do { recipe = try JSONDecoder().decode(BuildRecipe.self, from: data) } catch let DecodingError.keyNotFound(key, context) {
            throw BuildError.invalidField((context.codingPath + [key]).map(\.stringValue).joined(separator: "."), "is required")
        } catch let DecodingError.typeMismatch(_, context) {
            throw BuildError.invalidField(context.codingPath.map(\.stringValue).joined(separator: "."), "has the wrong type (\(context.debugDescription))")
        } catch let DecodingError.valueNotFound(_, context) {
            throw BuildError.invalidField(context.codingPath.map(\.stringValue).joined(separator: "."), "is null")
        } catch {
            throw BuildError.invalidField("(document)", "is not a build recipe: \(error)")
        }
        try recipe.validate(knownMethods: knownMethods)
        return recipe
    }

    public func validate(knownMethods: [String]) throws {
        guard schemaVersion == 1 else { throw BuildError.invalidField("schema_version", "must be 1") }
        let baseName = base.split(separator: "@", maxSplits: 1).first.map(String.init) ?? ""
        guard (try? RepositoryName(baseName)) != nil else { throw BuildError.invalidField("base", "'\(base)' is not namespace/name[@revision]") }
        guard (try? RepositoryName(name)) != nil else { throw BuildError.invalidField("name", "'\(name)' is not namespace/name") }
        switch (compression, sweep) {
        case (nil, nil): throw BuildError.invalidField("compression", "is required (or a sweep)")
        case (.some, .some): throw BuildError.invalidField("sweep", "cannot be given with compression")
        default: break
        }
        func check(method: String, ratio: Double, field: String) throws {
            guard knownMethods.contains(method) else {
                throw BuildError.invalidField("\(field).method", "'\(method)' is not one of \(knownMethods.joined(separator: ", "))")
            }
            guard ratio > 0, ratio < 1 else { throw BuildError.invalidField("\(field).ratio", "\(ratio) is not strictly between 0 and 1") }
        }
        if let compression {
            try check(method: compression.method, ratio: compression.ratio, field: "compression")
            if let tokens = compression.calibrationTokens, tokens < 256 {
                throw BuildError.invalidField("compression.calibration_tokens", "\(tokens) is fewer than 256")
            }
        }
        if let sweep {
            guard !sweep.methods.isEmpty else { throw BuildError.invalidField("sweep.methods", "is empty") }
            guard !sweep.ratios.isEmpty else { throw BuildError.invalidField("sweep.ratios", "is empty") }
            for method in sweep.methods { for ratio in sweep.ratios { try check(method: method, ratio: ratio, field: "sweep") } }
        }
        guard ["smoke", "full"].contains(evaluation.suite) else {
            throw BuildError.invalidField("evaluation.suite", "'\(evaluation.suite)' is not smoke or full")
        }
    }

    /// The single-variant recipes a recipe stands for: itself, or one per cell of its sweep
    /// (duplicates of a cell collapse into one).
    public func expanded() -> [BuildRecipe] {
        guard let sweep else { return [self] }
        var seen = Set<String>(), recipes: [BuildRecipe] = []
        for method in sweep.methods {
            for ratio in sweep.ratios {
                let variant = "\(name)-\(method)-\(Int((ratio * 100).rounded()))"
                guard seen.insert(variant).inserted else { continue }
                recipes.append(BuildRecipe(base: base, name: variant, compression: Compression(method: method, ratio: ratio),
                                           evaluation: evaluation))
            }
        }
        return recipes
    }
}

public enum BuildError: Error, Equatable, CustomStringConvertible {
    case invalidField(String, String)
    case missingInput(String)
    case stageFailed(stage: String, reason: String)

    public var description: String {
        switch self {
        case .invalidField(let field, let reason): "build recipe: \(field) \(reason)"
        case .missingInput(let what): "build input missing: \(what)"
        case .stageFailed(let stage, let reason): "stage \(stage) failed: \(reason)"
        }
    }
}
