import Builds
import Foundation
import HubCore

extension SQLiteMetadataStore {
    private static let activeStates = "('queued', 'running')"

    public func enqueueBuild(recipe: BuildRecipe, author: String, limit: Int) throws -> BuildRecord {
        let recipeJSON = try Self.encode(recipe)
        let id = "b" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(15)
        return try database.transaction {
            let active = try database.query("SELECT count(*) AS n FROM builds WHERE state IN \(Self.activeStates)").first?.int("n") ?? 0
            guard active < limit else { throw RegistryError.queueFull(limit: limit) }
            try database.query("INSERT INTO builds (id, recipe_json, author, state, result_json, created_at) VALUES (?, ?, ?, 'queued', ?, ?)",
                               [.text(id), .text(recipeJSON), .text(author), .text(try Self.encode(BuildResult())), .text(Timestamp.now())])
            return try required(id)
        }
    }

    public func build(id: String) throws -> BuildRecord? {
        try database.query("SELECT * FROM builds WHERE id = ?", [.text(id)]).first.map(Self.build(from:))
    }

    public func builds(states: [BuildState]?, limit: Int) throws -> [BuildRecord] {
        let filter = states.map { "WHERE state IN (\($0.map { "'\($0.rawValue)'" }.joined(separator: ", ")))" } ?? ""
        return try database.query("SELECT * FROM builds \(filter) ORDER BY created_at DESC, rowid DESC LIMIT ?", [.int(limit)])
            .map(Self.build(from:))
    }

    public func claimNextBuild() throws -> BuildRecord? {
        try database.transaction {
            guard let id = try database.query("SELECT id FROM builds WHERE state = 'queued' ORDER BY created_at, rowid LIMIT 1").first?.text("id") else {
                return nil
            }
            try database.query("UPDATE builds SET state = 'running', attempts = attempts + 1, started_at = ?, error = NULL WHERE id = ?",
                               [.text(Timestamp.now()), .text(id)])
            return try required(id)
        }
    }

    public func updateBuildResult(id: String, _ result: BuildResult) throws {
        try database.query("UPDATE builds SET result_json = ? WHERE id = ?", [.text(try Self.encode(result)), .text(id)])
    }

    public func finishBuild(id: String, state: BuildState, error: String?) throws -> BuildRecord {
        precondition(state.isFinal, "a build finishes in a final state")
        return try database.transaction {
            let current = try required(id)
            guard current.state == .running else { throw RegistryError.buildState(id: id, state: current.state.rawValue, action: "a running build can finish") }
            try database.query("UPDATE builds SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                               [.text(state.rawValue), .optionalText(error), .text(Timestamp.now()), .text(id)])
            return try required(id)
        }
    }

    public func cancelBuild(id: String) throws -> BuildRecord {
        try database.transaction {
            let current = try required(id)
            switch current.state {
            case .queued:
                try database.query("UPDATE builds SET state = 'cancelled', cancel_requested = 1, finished_at = ? WHERE id = ?",
                                   [.text(Timestamp.now()), .text(id)])
            case .running:
                try database.query("UPDATE builds SET cancel_requested = 1 WHERE id = ?", [.text(id)])
            case .succeeded, .failed, .cancelled:
                throw RegistryError.buildState(id: id, state: current.state.rawValue, action: "a queued or running build can be cancelled")
            }
            return try required(id)
        }
    }

    public func retryBuild(id: String, limit: Int) throws -> BuildRecord {
        try database.transaction {
            let current = try required(id)
            guard current.state == .failed || current.state == .cancelled else {
                throw RegistryError.buildState(id: id, state: current.state.rawValue, action: "a failed or cancelled build can be retried")
            }
            let active = try database.query("SELECT count(*) AS n FROM builds WHERE state IN \(Self.activeStates)").first?.int("n") ?? 0
            guard active < limit else { throw RegistryError.queueFull(limit: limit) }
            try database.query("""
                UPDATE builds SET state = 'queued', cancel_requested = 0, error = NULL, started_at = NULL, finished_at = NULL WHERE id = ?
                """, [.text(id)])
            return try required(id)
        }
    }

    public func requeueInterruptedBuilds() throws -> [String] {
        try database.transaction {
            let ids = try database.query("SELECT id FROM builds WHERE state = 'running' ORDER BY created_at").compactMap { $0.text("id") }
            // A build whose cancellation was asked for before the crash ends cancelled instead.
            try database.query("UPDATE builds SET state = 'cancelled', finished_at = ? WHERE state = 'running' AND cancel_requested = 1",
                               [.text(Timestamp.now())])
            try database.query("UPDATE builds SET state = 'queued' WHERE state = 'running'")
            return ids
        }
    }

    private func required(_ id: String) throws -> BuildRecord {
        guard let record = try build(id: id) else { throw RegistryError.buildNotFound(id) }
        return record
    }

    private static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private static func build(from row: SQLiteRow) throws -> BuildRecord {
        let decoder = JSONDecoder()
        return BuildRecord(
            id: row.text("id")!, recipe: try decoder.decode(BuildRecipe.self, from: Data(row.text("recipe_json")!.utf8)),
            author: row.text("author")!, state: BuildState(rawValue: row.text("state")!) ?? .failed,
            cancelRequested: row.int("cancel_requested") == 1, attempts: row.int("attempts") ?? 0, error: row.text("error"),
            result: try row.text("result_json").map { try decoder.decode(BuildResult.self, from: Data($0.utf8)) } ?? BuildResult(),
            createdAt: row.text("created_at")!, startedAt: row.text("started_at"), finishedAt: row.text("finished_at"))
    }
}
