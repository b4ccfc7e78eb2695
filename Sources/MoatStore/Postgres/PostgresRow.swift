import CPostgres

/// One row of a PostgreSQL result (binary format), read as strictly as an
/// SQLite ``Row``: integers from `int2`/`int4`/`int8`, booleans from `bool`
/// or an integer 0/1, text from `text`/`varchar`/`name`, blobs from `bytea`.
/// Valid only inside the query helper's transform.
public struct PostgresRow: SQLRow {
    let result: OpaquePointer
    let row: Int32

    private enum TypeOID {
        static let bool: UInt32 = 16
        static let bytea: UInt32 = 17
        static let name: UInt32 = 19
        static let int8: UInt32 = 20
        static let int2: UInt32 = 21
        static let int4: UInt32 = 23
        static let text: UInt32 = 25
        static let bpchar: UInt32 = 1042
        static let varchar: UInt32 = 1043
    }

    private func column(_ name: String) throws -> Int32 {
        let index = PQfnumber(result, "\"\(name)\"")
        guard index >= 0 else { throw StoreError(.noSuchColumn, message: "no column named \(name)") }
        return index
    }

    private func bytes(_ column: Int32) -> UnsafeRawBufferPointer {
        let count = Int(PQgetlength(result, row, column))
        guard let pointer = PQgetvalue(result, row, column) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: pointer, count: count)
    }

    private func nonNull(_ name: String, _ column: Int32) throws {
        if PQgetisnull(result, row, column) != 0 {
            throw StoreError(.unexpectedNull, message: "column \(name) is NULL")
        }
    }

    private func mismatch(_ name: String, expected: String, type: UInt32) -> StoreError {
        StoreError(.typeMismatch, message: "column \(name) has type oid \(type), expected \(expected)")
    }

    private static func bigEndian(_ bytes: UnsafeRawBufferPointer) -> Int64 {
        var value: UInt64 = 0
        for byte in bytes { value = value << 8 | UInt64(byte) }
        // Sign-extend the narrower integer types.
        let shift = UInt64(64 - 8 * bytes.count)
        return bytes.isEmpty ? 0 : Int64(bitPattern: value << shift) >> shift
    }

    /// The named column (see the type's notes on strictness).
    public func isNull(_ name: String) throws -> Bool { PQgetisnull(result, row, try column(name)) != 0 }

    /// The named column (see the type's notes on strictness).
    public func int64(_ name: String) throws -> Int64 {
        let index = try column(name)
        try nonNull(name, index)
        let type = PQftype(result, index)
        switch type {
        case TypeOID.int8 where PQgetlength(result, row, index) == 8,
            TypeOID.int4 where PQgetlength(result, row, index) == 4,
            TypeOID.int2 where PQgetlength(result, row, index) == 2:
            return Self.bigEndian(bytes(index))
        default:
            throw mismatch(name, expected: "an integer", type: type)
        }
    }

    /// The named column (see the type's notes on strictness).
    public func int(_ name: String) throws -> Int { Int(try int64(name)) }

    /// The named column (see the type's notes on strictness).
    public func bool(_ name: String) throws -> Bool {
        let index = try column(name)
        try nonNull(name, index)
        if PQftype(result, index) == TypeOID.bool {
            return bytes(index).first.map { $0 != 0 } ?? false
        }
        return try int64(name) != 0
    }

    /// The named column (see the type's notes on strictness).
    public func string(_ name: String) throws -> String {
        let index = try column(name)
        try nonNull(name, index)
        let type = PQftype(result, index)
        guard [TypeOID.text, TypeOID.varchar, TypeOID.name, TypeOID.bpchar].contains(type) else {
            throw mismatch(name, expected: "text", type: type)
        }
        return String(decoding: bytes(index), as: UTF8.self)
    }

    /// The named column (see the type's notes on strictness).
    public func blob(_ name: String) throws -> [UInt8] {
        let index = try column(name)
        try nonNull(name, index)
        let type = PQftype(result, index)
        guard type == TypeOID.bytea else { throw mismatch(name, expected: "bytea", type: type) }
        return Array(bytes(index))
    }

    /// The named column (see the type's notes on strictness).
    public func optionalInt64(_ name: String) throws -> Int64? { try isNull(name) ? nil : try int64(name) }
    /// The named column (see the type's notes on strictness).
    public func optionalInt(_ name: String) throws -> Int? { try isNull(name) ? nil : try int(name) }
    /// The named column (see the type's notes on strictness).
    public func optionalString(_ name: String) throws -> String? { try isNull(name) ? nil : try string(name) }
    /// The named column (see the type's notes on strictness).
    public func optionalBlob(_ name: String) throws -> [UInt8]? { try isNull(name) ? nil : try blob(name) }
}

/// SQL on a PostgreSQL connection, inside the store's transaction:
/// `?`/`?N` placeholders, values bound as in SQLite.
public struct PostgresQuerying: SQLQuerying {
    let connection: PostgresConnection

    /// Runs one statement; returns the number of rows it changed.
    @discardableResult
    public func execute(_ sql: String, _ bindings: [any SQLiteBindable]) throws -> Int {
        let result = try connection.execute(sql, bindings)
        defer { PQclear(result) }
        return Int(PostgresConnection.text(PQcmdTuples(result))) ?? 0
    }

    /// Runs one query and maps every row.
    public func query<T>(_ sql: String, _ bindings: [any SQLiteBindable], _ transform: (PostgresRow) throws -> T) throws -> [T] {
        let result = try connection.execute(sql, bindings)
        defer { PQclear(result) }
        let count = PQntuples(result)
        var rows: [T] = []
        rows.reserveCapacity(Int(count))
        for index in 0..<count { rows.append(try transform(PostgresRow(result: result, row: index))) }
        return rows
    }

    /// Runs one query without the statement savepoint of a write
    /// transaction and maps its first row, if any (for statements whose
    /// failure dooms the transaction anyway).
    func queryFirstWithoutSavepoint<T>(
        _ sql: String, _ bindings: [any SQLiteBindable], _ transform: (PostgresRow) throws -> T
    ) throws -> T? {
        let result = try connection.execute(sql, bindings, savepoint: false)
        defer { PQclear(result) }
        guard PQntuples(result) > 0 else { return nil }
        return try transform(PostgresRow(result: result, row: 0))
    }

    /// Runs one query and maps its first row, if any.
    public func queryFirst<T>(_ sql: String, _ bindings: [any SQLiteBindable], _ transform: (PostgresRow) throws -> T) throws
        -> T?
    {
        let result = try connection.execute(sql, bindings)
        defer { PQclear(result) }
        guard PQntuples(result) > 0 else { return nil }
        return try transform(PostgresRow(result: result, row: 0))
    }
}
