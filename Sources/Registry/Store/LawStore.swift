import Foundation

/// Fitted compression laws, kept per base revision and suite, newest last.
public protocol LawStore: Sendable {
    func storeLaws(baseRevisionID: String, suite: String, recordJSON: String) throws
    /// The newest stored law set's JSON for the base revision (of `suite`, when given).
    func latestLaws(baseRevisionID: String, suite: String?) throws -> String?
}

extension SQLiteMetadataStore {
    public func storeLaws(baseRevisionID: String, suite: String, recordJSON: String) throws {
        try database.query("INSERT INTO laws (base_revision_id, suite, record_json, created_at) VALUES (?, ?, ?, ?)",
                           [.text(baseRevisionID), .text(suite), .text(recordJSON), .text(Timestamp.now())])
    }

    public func latestLaws(baseRevisionID: String, suite: String?) throws -> String? {
        let filter = suite == nil ? "" : "AND suite = ?"
        return try database.query("SELECT record_json FROM laws WHERE base_revision_id = ? \(filter) ORDER BY id DESC LIMIT 1",
                                  [.text(baseRevisionID)] + (suite.map { [.text($0)] } ?? [])).first?.text("record_json")
    }
}
