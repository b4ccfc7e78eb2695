import MoatStore
import XCTest

private let valuesTable = Migration(
    version: 1, name: "create_vals",
    sql: """
        CREATE TABLE vals (
            id INTEGER PRIMARY KEY,
            i INTEGER, r REAL, s TEXT, b BLOB, f INTEGER, n TEXT
        );
        """)

private struct Values: Sendable, Equatable {
    var i: Int64
    var r: Double
    var s: String
    var b: [UInt8]
    var f: Bool
    var n: String?
}

private let samples = [
    Values(i: .max, r: 3.25, s: "héllo 👋🏽 wörld\u{0}after-nul 🇩🇪", b: [0, 1, 0, 255, 0, 0], f: true, n: nil),
    Values(i: .min, r: -0.5e-300, s: "", b: [], f: false, n: "present"),
    Values(i: 0, r: .infinity, s: "'; DROP TABLE vals; --", b: Array(0...255), f: true, n: ""),
]

private func readAll(_ connection: SQLiteConnection) throws -> [Values] {
    try connection.query("SELECT i, r, s, b, f, n FROM vals ORDER BY id") { row in
        Values(
            i: try row.int64("i"), r: try row.double("r"), s: try row.string("s"), b: try row.blob("b"),
            f: try row.bool("f"), n: try row.optionalString("n"))
    }
}

/// Binding and reading values, statements, the statement cache, misuse.
final class ValueTests: XCTestCase {
    /// Every bind type round-trips by position.
    func testPositionalRoundTrip() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, migrations: [valuesTable])
        for sample in samples {
            try await database.write { tx in
                try tx.execute(
                    "INSERT INTO vals (i, r, s, b, f, n) VALUES (?, ?, ?, ?, ?, ?)",
                    [sample.i, sample.r, sample.s, sample.b, sample.f, sample.n])
            }
        }
        let read = try await database.read(readAll)
        XCTAssertEqual(read, samples)
        // Lengths survive NUL characters: SQLite counts the stored bytes.
        let lengths = try await database.read { connection in
            try connection.query("SELECT length(CAST(s AS BLOB)), length(b) FROM vals ORDER BY id") {
                [try $0.int(at: 0), try $0.int(at: 1)]
            }
        }
        XCTAssertEqual(lengths, samples.map { [$0.s.utf8.count, $0.b.count] })
        await database.close()
    }

    /// Every bind type round-trips by name, on the raw Statement API.
    func testNamedRoundTrip() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, migrations: [valuesTable])
        let (ids, changes) = try await database.write { tx in
            let connection = try tx.activeConnection()
            let statement = try connection.prepare(
                "INSERT INTO vals (i, r, s, b, f, n) VALUES (:i, @r, $s, :b, :f, :n)")
            var ids: [Int64] = []
            var changes: [Int] = []
            for sample in samples {
                try statement.bind(sample.i, named: "i")
                try statement.bind(sample.r, named: "@r")
                try statement.bind(sample.s, named: "s")
                try statement.bind(sample.b, named: ":b")
                try statement.bind(sample.f, named: "f")
                if let n = sample.n { try statement.bind(n, named: "n") } else { try statement.bindNull(at: 6) }
                guard try statement.step() == nil else { throw IntentionalError(tag: "INSERT returned a row") }
                changes.append(connection.changes)
                ids.append(connection.lastInsertRowID)
                statement.reset()
            }
            return (ids, changes)
        }
        XCTAssertEqual(ids, [1, 2, 3])
        XCTAssertEqual(changes, [1, 1, 1])
        let read = try await database.read(readAll)
        XCTAssertEqual(read, samples)

        // The dictionary form of named bindings.
        try await database.write { tx in
            try tx.execute(
                "INSERT INTO vals (i, s, n) VALUES (:i, :s, :n)",
                [":i": Int64(42), "s": "named", "n": String?.none])
        }
        let last = try await database.read { connection in
            try connection.queryFirst("SELECT i, s, n, r, b FROM vals WHERE i = :i", ["i": 42]) { row in
                [try row.value("i"), try row.value("s"), try row.value("n"), try row.value("r"), try row.value("b")]
            }
        }
        XCTAssertEqual(last, [.integer(42), .text("named"), .null, .null, .null])
        await database.close()
    }

    /// NULL, empty text and empty blob are three different things.
    func testNullHandling() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, migrations: [valuesTable])
        try await database.write { tx in
            try tx.execute("INSERT INTO vals (id, s, b) VALUES (1, ?, ?)", ["", [UInt8]()])
            try tx.execute(
                "INSERT INTO vals (id, s, b, i) VALUES (2, ?, ?, ?)", [String?.none, [UInt8]?.none, SQLiteValue.null])
        }
        let types = try await database.read { connection in
            try connection.query("SELECT typeof(s), typeof(b), typeof(i) FROM vals ORDER BY id") {
                [try $0.string(at: 0), try $0.string(at: 1), try $0.string(at: 2)]
            }
        }
        XCTAssertEqual(types, [["text", "blob", "null"], ["null", "null", "null"]])

        struct Nulls: Sendable, Equatable {
            var optionals: [String] = []
            var isNull = false
            var stringReason: StoreError.Reason?
            var int64Reason: StoreError.Reason?
        }
        let nulls = try await database.read { connection in
            try connection.queryFirst("SELECT s, b, i, r FROM vals WHERE id = 2") { row in
                Nulls(
                    optionals: [
                        "\(String(describing: try row.optionalString("s")))",
                        "\(String(describing: try row.optionalBlob("b")))",
                        "\(String(describing: try row.optionalInt64("i")))",
                        "\(String(describing: try row.optionalDouble("r")))",
                        "\(String(describing: try row.optionalBool("i")))",
                        "\(String(describing: try row.optionalInt("i")))",
                    ],
                    isNull: try row.isNull("s"),
                    stringReason: storeErrorReason { try row.string("s") },
                    int64Reason: storeErrorReason { try row.int64("i") })
            }
        }
        XCTAssertEqual(
            nulls,
            Nulls(
                optionals: Array(repeating: "nil", count: 6), isNull: true, stringReason: .unexpectedNull,
                int64Reason: .unexpectedNull))

        let empties = try await database.read { connection in
            try connection.queryFirst("SELECT s, b FROM vals WHERE id = 1") { row in
                [try row.optionalString("s") == "", try row.optionalBlob("b") == [], try row.isNull("s")]
            }
        }
        XCTAssertEqual(empties, [true, true, false])
        await database.close()
    }

    /// Getters are strict about types and names, and never crash.
    func testStrictGetters() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, migrations: [valuesTable])
        let (reasons, widened, blob, caseInsensitive, names) = try await database.read { connection in
            let row = try connection.queryFirst("SELECT 'text' AS t, x'00ff' AS b, 7 AS i, 1.5 AS r") { row in
                (
                    [
                        storeErrorReason { try row.int64("t") },
                        storeErrorReason { try row.string("b") },
                        storeErrorReason { try row.blob("t") },
                        storeErrorReason { try row.int64("r") },
                        storeErrorReason { try row.string("missing") },
                        storeErrorReason { try row.value(at: 9) },
                    ],
                    try row.double("i"),  // INTEGER widens to REAL
                    try row.blob("b"),
                    try row.int("I"),  // names are case-insensitive, as in SQL
                    row.columnNames
                )
            }
            guard let row else { throw IntentionalError(tag: "no row") }
            return row
        }
        XCTAssertEqual(reasons, [.typeMismatch, .typeMismatch, .typeMismatch, .typeMismatch, .noSuchColumn, .noSuchColumn])
        XCTAssertEqual(widened, 7)
        XCTAssertEqual(blob, [0, 255])
        XCTAssertEqual(caseInsensitive, 7)
        XCTAssertEqual(names, ["t", "b", "i", "r"])
        await database.close()
    }

    /// Misuse is reported, not crashed on.
    func testMisuse() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, migrations: [valuesTable])
        let reasons = try await database.write { tx -> [StoreError.Reason?] in
            let connection = try tx.activeConnection()
            let statement = try connection.prepare("SELECT ?1 + ?2")
            return [
                storeErrorReason { try tx.execute("INSERT INTO vals (i) VALUES (?)", [1, 2]) },
                storeErrorReason { try tx.execute("INSERT INTO vals (i) VALUES (?)", []) },
                storeErrorReason { try tx.execute("INSERT INTO vals (i) VALUES (1); DELETE FROM vals", []) },
                storeErrorReason { try tx.execute("   ", []) },
                storeErrorReason { try statement.bind(1, at: 3) },
                storeErrorReason { try statement.bind(1, named: "nope") },
                storeErrorReason { try tx.execute("SELEC 1", []) },
                storeErrorReason { try tx.execute("SELECT * FROM no_such_table", []) },
            ]
        }
        XCTAssertEqual(reasons, [.misuse, .misuse, .misuse, .misuse, .misuse, .misuse, .sql, .sql])
        let rows = try await count("vals", in: database)
        XCTAssertEqual(rows, 0)
        await database.close()
    }

    /// A row kept past its step is refused.
    func testStaleRow() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, migrations: [valuesTable])
        let (value, reason) = try await database.read { connection -> (Int?, StoreError.Reason?) in
            let statement = try connection.prepare("SELECT 1 UNION ALL SELECT 2")
            guard let first = try statement.step() else { return (nil, nil) }
            let value = try first.int(at: 0)
            _ = try statement.step()
            return (value, storeErrorReason { try first.int(at: 0) })
        }
        XCTAssertEqual(value, 1)
        XCTAssertEqual(reason, .misuse)
        await database.close()
    }

    /// Statements are cached by SQL text, and nested use of one SQL works.
    func testStatementCache() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, migrations: [valuesTable])
        try await database.write { tx in
            for value in 0..<10 { try tx.execute("INSERT INTO vals (i) VALUES (?)", [value]) }
        }
        let (cached, pairs) = try await database.read { connection in
            let sql = "SELECT i FROM vals WHERE i < ? ORDER BY i"
            let before = connection.cachedStatementCount
            for _ in 0..<5 { _ = try connection.query(sql, [3]) { try $0.int(at: 0) } }
            let added = connection.cachedStatementCount - before
            // The same SQL inside its own row closure gets a fresh statement.
            let pairs = try connection.query(sql, [2]) { outer in
                let value = try outer.int(at: 0)
                return try connection.query(sql, [2]) { "\(value)\(try $0.int(at: 0))" }
            }
            return (added, pairs.flatMap { $0 })
        }
        XCTAssertEqual(cached, 1)
        XCTAssertEqual(pairs, ["00", "01", "10", "11"])
        await database.close()
    }

    /// A standalone connection: pragmas, helpers, and CLOSED after close.
    func testStandaloneConnection() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let connection = try SQLiteConnection(path: directory.path(), synchronous: .normal)
        try connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v);")
        XCTAssertEqual(try connection.execute("INSERT INTO t (v) VALUES (?), (?)", ["a", "b"]), 2)
        XCTAssertEqual(connection.lastInsertRowID, 2)
        XCTAssertEqual(try connection.queryFirst("PRAGMA journal_mode") { try $0.string(at: 0) }, "wal")
        XCTAssertEqual(try connection.queryFirst("PRAGMA synchronous") { try $0.int(at: 0) }, 1)
        XCTAssertEqual(try connection.queryFirst("PRAGMA foreign_keys") { try $0.int(at: 0) }, 1)
        let statement = try connection.prepare("SELECT v FROM t ORDER BY id")
        XCTAssertEqual(try statement.step().map { try $0.string("v") }, "a")
        connection.close()
        connection.close()  // idempotent
        XCTAssertFalse(connection.isOpen)
        XCTAssertEqual(storeErrorReason { try connection.execute("SELECT 1") }, .closed)
        XCTAssertEqual(storeErrorReason { try connection.query("SELECT 1") { _ in 1 } }, .closed)
        XCTAssertEqual(storeErrorReason { try statement.step() as Any }, .closed)
    }
}
