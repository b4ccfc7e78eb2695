import CPostgres
import Foundation

/// One libpq connection, used by one store thread at a time.
///
/// Statements are written with SQLite-style placeholders (`?`, `?N`), which
/// ``PostgresSQL/translate(_:)`` numbers `$N`. Parameters travel typed: text
/// as `text`, integers as `int8`, blobs as binary `bytea`, NULL untyped (the
/// server infers it from the column). Results come back in binary format and
/// are read by ``PostgresRow`` by column type, as strictly as SQLite's rows.
///
/// Inside a write transaction every statement that is not a plain SELECT runs
/// in a savepoint, so a failing statement (a UNIQUE violation the account
/// store catches and explains) leaves the transaction usable, as a failing
/// statement does in SQLite. A retryable failure (serialization, deadlock)
/// marks the transaction for a retry whatever the body does with the error.
final class PostgresConnection {
    private var handle: OpaquePointer?
    private let url: String
    private let password: String?
    /// Statements translated to `$N` form, by their SQLite-style text.
    private var translations: [String: String] = [:]
    /// True between BEGIN and COMMIT/ROLLBACK of a write transaction.
    var inWriteTransaction = false
    /// True while the store runs a transaction body (read or write): a lost
    /// connection then marks the transaction for a retry, even if the body
    /// swallows the error.
    var inTransaction = false
    /// Set when a statement of the current transaction failed in a way that
    /// only a new transaction can cure.
    var mustRetry: StoreError?
    /// A transaction's opening statements (BEGIN, LOCK), held back until the
    /// first statement of its body so that both travel in one round trip
    /// (see ``begin(_:)``).
    private var pendingBegin: [String] = []

    /// Connects; throws `STORE_UNAVAILABLE` if the server cannot be reached.
    init(url: String, password: String?) throws {
        self.url = url
        self.password = password
        try connect()
    }

    deinit { close() }

    /// Whether the connection is up (as far as libpq knows).
    var isUp: Bool { handle.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// libpq's view of the transaction (idle, in a block, failed).
    var handleTransactionStatus: PGTransactionStatusType {
        handle.map { PQtransactionStatus($0) } ?? PQTRANS_UNKNOWN
    }

    /// Closes the connection. Idempotent.
    func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// Drops the connection and opens a new one.
    func reconnect() throws {
        close()
        try connect()
    }

    private func connect() throws {
        // The URL goes in as `dbname` with expand_dbname, so the password can
        // travel beside it without ever being part of a string we log.
        // connect_timeout comes first so that one in the URL wins: without
        // any, libpq waits for a silent host as long as TCP does.
        var keywords = ["connect_timeout", "dbname", "fallback_application_name"]
        var values = ["10", url, "moatd"]
        if let password {
            keywords.append("password")
            values.append(password)
        }
        let connection = withCBuffers(keywords.map { Array($0.utf8CString) } + [nil]) { keys in
            withCBuffers(values.map { Array($0.utf8CString) } + [nil]) { vals in PQconnectdbParams(keys, vals, 1) }
        }
        guard let connection else {
            throw StoreError(.unavailable, message: "cannot allocate a PostgreSQL connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.text(PQerrorMessage(connection))
            PQfinish(connection)
            throw StoreError(.unavailable, message: "cannot connect to PostgreSQL: \(message)")
        }
        // Server notices ("relation exists, skipping") would go to stderr.
        _ = PQsetNoticeProcessor(connection, { _, _ in }, nil)
        handle = connection
        translations.removeAll(keepingCapacity: true)
        pendingBegin.removeAll()
    }

    /// Opens a transaction with `statements` (a BEGIN, then what must run
    /// before the snapshot exists, such as LOCK TABLE). Nothing is sent
    /// yet: they go in one pipeline with the body's first statement, so a
    /// transaction costs one round trip fewer. The server sees the same
    /// statements in the same order.
    func begin(_ statements: [String]) {
        pendingBegin = statements
    }

    /// Ends a transaction that ``begin(_:)`` opened with "COMMIT" or
    /// "ROLLBACK"; if its body sent nothing, the server never saw the BEGIN
    /// and nothing is sent.
    func end(_ statement: String) throws {
        if !pendingBegin.isEmpty {
            pendingBegin.removeAll()
            return
        }
        try run(statement)
    }

    /// Runs a script of statements without parameters (DDL, BEGIN, COMMIT).
    func run(_ sql: String) throws {
        let script = pendingBegin.isEmpty ? sql : (pendingBegin + [sql]).joined(separator: "; ")
        pendingBegin.removeAll()
        let result = try exec { PQexec($0, script) }
        defer { PQclear(result) }
        try check(result, sql: script)
    }

    /// Runs one statement with parameters and returns its result (the caller
    /// clears it).
    /// `savepoint: false` skips the statement savepoint of a write
    /// transaction, for a statement whose only failures are ones that need
    /// a new transaction anyway (two round trips fewer).
    ///
    /// A guarded statement travels with its SAVEPOINT and RELEASE (and a
    /// held-back BEGIN) in one pipeline: one round trip, not three.
    func execute(_ sql: String, _ bindings: [any SQLiteBindable], savepoint: Bool = true) throws -> OpaquePointer {
        let translated = try translation(of: sql)
        let guarded = savepoint && inWriteTransaction && !Self.isPlainSelect(translated)
        if !guarded && pendingBegin.isEmpty { return try executeTranslated(translated, bindings) }
        let opening = pendingBegin.map { (sql: $0, bindings: [any SQLiteBindable]()) }
        pendingBegin.removeAll()
        var statements = opening
        if guarded { statements.append(("SAVEPOINT moat_statement", [])) }
        let index = statements.count
        statements.append((translated, bindings))
        if guarded { statements.append(("RELEASE SAVEPOINT moat_statement", [])) }
        var failedAt: Int?
        do {
            var results = try pipeline(statements, failedAt: &failedAt)
            let result = results.remove(at: index)
            results.forEach { PQclear($0) }
            return result
        } catch let error as StoreError {
            // Back to the savepoint only if it was set: when SAVEPOINT itself
            // failed, a savepoint of the same name left by an earlier
            // statement would undo work this transaction kept since.
            if guarded, let failedAt, failedAt >= index, isUp { try? run("ROLLBACK TO SAVEPOINT moat_statement") }
            throw error
        }
    }

    private func executeTranslated(_ sql: String, _ bindings: [any SQLiteBindable]) throws -> OpaquePointer {
        let parameters = try Parameters(bindings)
        let result = try exec { connection in
            withCBuffers(parameters.values) { pointers in
                PQexecParams(
                    connection, sql, Int32(parameters.types.count), parameters.types, pointers, parameters.lengths,
                    parameters.formats, 1)
            }
        }
        do {
            try check(result, sql: sql)
        } catch {
            PQclear(result)
            throw error
        }
        return result
    }

    /// Sends `statements` (in `$N` form) in one libpq pipeline: the server
    /// gets them in one write, runs them in order (skipping the rest after
    /// a failure, up to the pipeline's Sync) and its answers come back in
    /// one read. Returns every statement's result, for the caller to clear;
    /// throws the first failure, with `failedAt` set to its index. A
    /// connection that breaks on the way is closed.
    func pipeline(_ statements: [(sql: String, bindings: [any SQLiteBindable])], failedAt: inout Int?) throws -> [OpaquePointer] {
        let parameters = try statements.map { try Parameters($0.bindings) }
        guard let handle, PQstatus(handle) == CONNECTION_OK else {
            throw lost("the PostgreSQL connection is down")
        }
        var healthy = PQenterPipelineMode(handle) == 1
        for (statement, parameter) in zip(statements, parameters) where healthy {
            healthy = withCBuffers(parameter.values) { pointers in
                PQsendQueryParams(
                    handle, statement.sql, Int32(parameter.types.count), parameter.types, pointers, parameter.lengths,
                    parameter.formats, 1) == 1
            }
        }
        if healthy { healthy = PQpipelineSync(handle) == 1 }
        var results: [OpaquePointer] = []
        if healthy {
            // Each statement's result is followed by a NULL; then the Sync's.
            for _ in statements {
                guard let result = PQgetResult(handle) else {
                    healthy = false
                    break
                }
                results.append(result)
                while let extra = PQgetResult(handle) { PQclear(extra) }
            }
        }
        if healthy {
            if let sync = PQgetResult(handle) {
                healthy = PQresultStatus(sync) == PGRES_PIPELINE_SYNC
                PQclear(sync)
            } else {
                healthy = false
            }
        }
        if healthy { healthy = PQexitPipelineMode(handle) == 1 }
        guard healthy else {
            let message = Self.text(PQerrorMessage(handle))
            results.forEach { PQclear($0) }
            close()
            throw lost("the PostgreSQL connection broke in a pipeline: \(message)")
        }
        for (index, result) in results.enumerated() {
            do {
                try check(result, sql: statements[index].sql)
            } catch {
                failedAt = index
                results.forEach { PQclear($0) }
                throw error
            }
        }
        return results
    }

    /// Runs `call` on the live connection; a NULL result (out of memory, or
    /// the connection gone) becomes an error.
    private func exec(_ call: (OpaquePointer) -> OpaquePointer?) throws -> OpaquePointer {
        guard let handle, PQstatus(handle) == CONNECTION_OK else {
            throw lost("the PostgreSQL connection is down")
        }
        guard let result = call(handle) else {
            throw lost("PostgreSQL returned no result: \(Self.text(PQerrorMessage(handle)))")
        }
        return result
    }

    private func lost(_ message: String) -> StoreError {
        let error = StoreError(.unavailable, message: message)
        if inTransaction { mustRetry = error }
        return error
    }

    /// Throws the result's error, if it failed.
    private func check(_ result: OpaquePointer, sql: String) throws {
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: return
        default: break
        }
        let state = Self.field(result, "C") ?? ""
        let message = Self.field(result, "M") ?? Self.text(PQresultErrorMessage(result))
        let short = sql.count > 200 ? String(sql.prefix(200)) + "…" : sql
        let error = StoreError(
            PostgresSQL.reason(forSQLState: state, connectionUp: isUp), message: "\(message) [sqlstate \(state)] [sql: \(short)]")
        if error.reason == .unavailable || error.reason == .serializationFailure, inTransaction {
            mustRetry = error
        }
        throw error
    }

    private func translation(of sql: String) throws -> String {
        if let known = translations[sql] { return known }
        let translated = try PostgresSQL.translate(sql)
        if translations.count < 512 { translations[sql] = translated }
        return translated
    }

    private static func isPlainSelect(_ sql: String) -> Bool {
        let head = sql.drop { $0.isWhitespace }.prefix(6).uppercased()
        return head == "SELECT"
    }

    private static func field(_ result: OpaquePointer, _ code: Character) -> String? {
        guard let ascii = code.asciiValue, let pointer = PQresultErrorField(result, Int32(ascii)) else { return nil }
        return String(cString: pointer)
    }

    static func text(_ pointer: UnsafePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        return String(cString: pointer).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// SQL text and error codes between the account store and PostgreSQL.
enum PostgresSQL {
    /// Numbers SQLite-style placeholders for PostgreSQL: `?N` becomes `$N`, a
    /// bare `?` the next number after the highest so far. Quoted strings,
    /// quoted identifiers and comments are left alone.
    static func translate(_ sql: String) throws -> String {
        var output = ""
        output.reserveCapacity(sql.utf8.count + 16)
        var highest = 0
        var characters = Array(sql)[...]
        while let character = characters.first {
            characters = characters.dropFirst()
            switch character {
            case "'", "\"":
                output.append(character)
                while let next = characters.first {
                    characters = characters.dropFirst()
                    output.append(next)
                    if next == character { break }
                }
            case "-" where characters.first == "-":
                output.append(character)
                while let next = characters.first, next != "\n" {
                    characters = characters.dropFirst()
                    output.append(next)
                }
            case "?":
                var digits = ""
                while let next = characters.first, next.isASCII, next.isNumber {
                    digits.append(next)
                    characters = characters.dropFirst()
                }
                let number: Int
                if digits.isEmpty {
                    number = highest + 1
                } else if let explicit = Int(digits), explicit > 0 {
                    number = explicit
                } else {
                    throw StoreError.misuse("bad placeholder ?\(digits) [sql: \(sql)]")
                }
                highest = max(highest, number)
                output += "$\(number)"
            default:
                output.append(character)
            }
        }
        return output
    }

    /// The stable reason for a PostgreSQL SQLSTATE.
    static func reason(forSQLState state: String, connectionUp: Bool) -> StoreError.Reason {
        if !connectionUp { return .unavailable }
        switch state {
        case "23505": return .constraintUnique
        case "23503": return .constraintForeignKey
        case "23502": return .constraintNotNull
        case "23514": return .constraintCheck
        case "40001", "40P01": return .serializationFailure
        case "22021", "22P05": return .invalidText
        case "42P01", "42703", "42601", "42883", "42804", "42P18": return .sql
        case "53100": return .full
        case "53200": return .noMemory
        case "57014": return .interrupted
        case "25006": return .unavailable  // read-only: a standby after failover
        default: break
        }
        switch state.prefix(2) {
        case "23": return .constraint
        case "08", "57", "53": return .unavailable  // connection, operator intervention, resources
        case "42": return .sql
        case "28": return .permission
        default: return .internal
        }
    }
}

extension StoreError.Reason {
    /// The database cannot be reached or cannot take the work now (the
    /// PostgreSQL server is down, restarting, failing over, or out of
    /// connections) and retrying did not help. Nothing of the write was
    /// kept, unless the connection broke during its COMMIT (then its fate
    /// is unknown). Callers answer UNAVAILABLE.
    public static let unavailable = StoreError.Reason(rawValue: "STORE_UNAVAILABLE")
    /// A transaction lost a serialization conflict or a deadlock (retried by
    /// the PostgreSQL store; surfaces only once the retries are spent).
    public static let serializationFailure = StoreError.Reason(rawValue: "SERIALIZATION_FAILURE")
    /// A text value PostgreSQL cannot store (a NUL character).
    public static let invalidText = StoreError.Reason(rawValue: "INVALID_TEXT")
}

// MARK: - C strings

/// Copies each value into its own C buffer for the length of `body` (nil
/// stays a NULL pointer): libpq reads the arrays only during the call.
private func withCBuffers<R>(_ values: [[CChar]?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let buffers: [UnsafeMutablePointer<CChar>?] = values.map { value in
        guard let value else { return nil }
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, value.count))
        buffer.initialize(from: value, count: value.count)
        return buffer
    }
    defer { for buffer in buffers { buffer?.deallocate() } }
    return body(buffers.map { $0.map { UnsafePointer($0) } })
}

// MARK: - LISTEN

extension PostgresConnection {
    /// Waits up to `timeout` for notifications on a connection that ran
    /// `LISTEN`; returns how many arrived. Throws `STORE_UNAVAILABLE` when
    /// the connection dropped.
    func waitForNotifications(timeout: Duration) throws -> [PostgresNotification] {
        guard let handle, PQstatus(handle) == CONNECTION_OK else {
            throw StoreError(.unavailable, message: "the PostgreSQL listener connection is down")
        }
        // Notifications that arrived while the connection ran statements
        // are already buffered.
        _ = PQconsumeInput(handle)
        var received = drainNotifications(handle)
        if !received.isEmpty { return received }
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(max(0, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        let ready = poll(&descriptor, 1, milliseconds)
        if ready > 0 {
            guard PQconsumeInput(handle) == 1 else {
                throw StoreError(.unavailable, message: "the PostgreSQL listener connection broke: \(Self.text(PQerrorMessage(handle)))")
            }
            received = drainNotifications(handle)
        }
        return received
    }

    private func drainNotifications(_ handle: OpaquePointer) -> [PostgresNotification] {
        var received: [PostgresNotification] = []
        while let notification = PQnotifies(handle) {
            received.append(
                PostgresNotification(
                    channel: String(cString: notification.pointee.relname),
                    payload: notification.pointee.extra.map { String(cString: $0) } ?? ""))
            PQfreemem(notification)
        }
        return received
    }
}

/// Bindings in libpq's form: text as `text`, integers as `int8`, blobs as
/// binary `bytea`, NULL untyped.
private struct Parameters {
    var types: [Oid] = []
    var values: [[CChar]?] = []
    var lengths: [Int32] = []
    var formats: [Int32] = []

    init(_ bindings: [any SQLiteBindable]) throws {
        for binding in bindings {
            switch binding.sqliteValue {
            case .null:
                append(0, nil)
            case .integer(let value):
                append(20, Array(String(value).utf8CString))  // int8
            case .real(let value):
                append(701, Array("\(value)".utf8CString))  // float8
            case .text(let value):
                // libpq parameters are C strings and PostgreSQL text cannot
                // hold NUL: refuse instead of storing a truncated value.
                if value.utf8.contains(0) {
                    throw StoreError(.invalidText, message: "a text value contains a NUL character")
                }
                append(25, Array(value.utf8CString))  // text
            case .blob(let bytes):
                append(17, bytes.map { CChar(bitPattern: $0) }, length: Int32(bytes.count), binary: true)  // bytea
            }
        }
    }

    private mutating func append(_ type: Oid, _ value: [CChar]?, length: Int32 = 0, binary: Bool = false) {
        types.append(type)
        values.append(value)
        lengths.append(length)
        formats.append(binary ? 1 : 0)
    }
}

/// One NOTIFY received on a LISTEN connection.
struct PostgresNotification: Sendable, Equatable {
    /// The channel it was sent on.
    var channel: String
    /// Its payload ("" when none).
    var payload: String
}
