import Foundation
import HubTestSupport
@testable import Registry
import Testing

@Suite("Registry migrations")
struct MigrationTests {
    @Test("a fresh database gets every migration once; reopening runs none")
    func freshAndReopen() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("registry.sqlite").path
        let database = try SQLiteDatabase(path: path)
        #expect(try RegistryMigrations.migrate(database) == RegistryMigrations.all.map(\.name))
        #expect(try RegistryMigrations.migrate(database).isEmpty)
        let reopened = try SQLiteDatabase(path: path)
        #expect(try RegistryMigrations.migrate(reopened).isEmpty)
        #expect(try reopened.query("PRAGMA journal_mode").first?.text("journal_mode") == "wal")
        #expect(try reopened.query("PRAGMA foreign_keys").first?.int("foreign_keys") == 1)
    }

    @Test("every earlier schema version migrates forward to the current one")
    func fromEveryVersion() throws {
        let current = try RegistryMigrations.currentSchemaSQL()
        for applied in 0 ... RegistryMigrations.all.count {
            let database = try SQLiteDatabase(path: ":memory:")
            try RegistryMigrations.migrate(database, upTo: applied)
            try RegistryMigrations.migrate(database)
            #expect(try RegistryMigrations.schemaSQL(of: database) == current)
        }
    }

    @Test("schemas/registry.sql is the schema the migrations produce")
    func committedSchemaIsCurrent() throws {
        let committed = try String(contentsOf: Assets.repositoryRoot.appendingPathComponent("schemas/registry.sql"), encoding: .utf8)
        #expect(committed == (try RegistryMigrations.currentSchemaSQL()), "regenerate with: hubctl schema > schemas/registry.sql")
    }

    @Test("a database from a newer hubctl is refused, not half-migrated")
    func newerSchema() throws {
        let database = try SQLiteDatabase(path: ":memory:")
        try RegistryMigrations.migrate(database)
        try database.query("INSERT INTO schema_migrations (name, applied_at) VALUES ('999_future', 'now')")
        #expect(throws: RegistryError.newerSchema(database: ":memory:", migration: "999_future")) {
            try RegistryMigrations.migrate(database)
        }
    }
}
