import CSQLite
import Foundation

/// A SQLite connection with the settings the registry relies on: WAL journaling (readers
/// never block the writer), foreign keys enforced, a busy timeout instead of instant
/// SQLITE_BUSY, and full sync so a committed transaction survives a crash.
public final class SQLiteDatabase: @unchecked Sendable {
    public let path: String
    private var handle: OpaquePointer?
    private let lock = NSLock()

    public init(path: String) throws(SQLiteError) {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let status = sqlite3_open_v2(path, &db, flags, nil)
        guard status == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw .cannotOpen(path: path, message: message)
        }
        handle = db
        sqlite3_busy_timeout(db, 10_000)
        try execute("PRAGMA journal_mode = WAL")
        try execute("PRAGMA synchronous = FULL")
        try execute("PRAGMA foreign_keys = ON")
    }

    deinit { sqlite3_close_v2(handle) }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws(SQLiteError) {
        var error: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(handle, sql, nil, nil, &error) != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(error)
            throw .statementFailed(sql: sql, message: message)
        }
    }

    /// Runs a statement with bound values and returns every row.
    @discardableResult
    public func query(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> [SQLiteRow] {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw .statementFailed(sql: sql, message: lastMessage)
        }
        defer { sqlite3_finalize(statement) }
        for (index, value) in values.enumerated() {
            let position = Int32(index + 1)
            let status: Int32 = switch value {
            case .null: sqlite3_bind_null(statement, position)
            case .integer(let v): sqlite3_bind_int64(statement, position, v)
            case .real(let v): sqlite3_bind_double(statement, position, v)
            case .text(let v): sqlite3_bind_text(statement, position, v, -1, SQLiteDatabase.transient)
            }
            guard status == SQLITE_OK else { throw .statementFailed(sql: sql, message: lastMessage) }
        }
        var rows: [SQLiteRow] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else {
                if status == SQLITE_CONSTRAINT || (status & 0xFF) == SQLITE_CONSTRAINT {
                    throw .constraintViolated(sql: sql, message: lastMessage)
                }
                throw .statementFailed(sql: sql, message: lastMessage)
            }
            var columns: [String: SQLiteValue] = [:]
            for column in 0 ..< sqlite3_column_count(statement) {
                let name = String(cString: sqlite3_column_name(statement, column))
                columns[name] = switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: .integer(sqlite3_column_int64(statement, column))
                case SQLITE_FLOAT: .real(sqlite3_column_double(statement, column))
                case SQLITE_NULL: .null
                default: .text(String(cString: sqlite3_column_text(statement, column)))
                }
            }
            rows.append(SQLiteRow(columns: columns))
        }
        return rows
    }

    /// Runs `body` inside one IMMEDIATE transaction: all of its writes commit together, or
    /// none do. Calls on one connection are serialized.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    private var lastMessage: String { String(cString: sqlite3_errmsg(handle)) }

    /// SQLite copies bound text immediately when given this destructor.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}

public enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    public static func int(_ value: Int) -> SQLiteValue { .integer(Int64(value)) }
    public static func optionalText(_ value: String?) -> SQLiteValue { value.map { .text($0) } ?? .null }
}

public struct SQLiteRow: Sendable {
    public let columns: [String: SQLiteValue]

    public func text(_ name: String) -> String? {
        if case .text(let v) = columns[name] { v } else { nil }
    }

    public func int(_ name: String) -> Int? {
        if case .integer(let v) = columns[name] { Int(v) } else { nil }
    }
}

public enum SQLiteError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, message: String)
    case statementFailed(sql: String, message: String)
    case constraintViolated(sql: String, message: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let message): "cannot open database \(path): \(message)"
        case .statementFailed(let sql, let message): "SQLite error: \(message) (in: \(sql.prefix(120)))"
        case .constraintViolated(let sql, let message): "constraint violated: \(message) (in: \(sql.prefix(120)))"
        }
    }
}
