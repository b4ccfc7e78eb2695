public import MoatCore

/// The per-address sign-in failure counter in the account database
/// (table `address_failures`): counts survive restarts, and the one writer
/// makes each count atomic.
public struct SQLiteAddressFailureCounter: AddressFailureCounter {
    let database: Database

    /// A counter in the store's database.
    public init(store: SQLiteAccountStore) { self.database = store.database }

    /// The open window of `key`, if any.
    public func window(key: String, at now: Timestamp, windowSeconds: Int64) async throws -> AddressFailureWindow? {
        let opened = now.adding(seconds: -windowSeconds).milliseconds
        return try await database.read { connection in
            try connection.queryFirst(
                "SELECT window_start, failures FROM address_failures WHERE address = ? AND window_start > ?",
                [key, opened]
            ) { row in
                AddressFailureWindow(
                    startedAt: Timestamp(milliseconds: try row.int64("window_start")), failures: try row.int("failures"))
            }
        }
    }

    /// Counts one failure, in one statement: into the open window, or a
    /// new one from `now`; windows that ended are deleted on the way.
    @discardableResult
    public func recordFailure(key: String, at now: Timestamp, windowSeconds: Int64) async throws -> AddressFailureWindow {
        let opened = now.adding(seconds: -windowSeconds).milliseconds
        let nowMS = now.milliseconds
        return try await database.write { transaction in
            _ = try transaction.execute(
                "DELETE FROM address_failures WHERE window_start <= ? AND address <> ?", [opened, key])
            let window = try transaction.queryFirst(
                """
                INSERT INTO address_failures (address, window_start, failures) VALUES (?, ?, 1)
                ON CONFLICT (address) DO UPDATE SET
                    failures = CASE WHEN window_start > ? THEN failures + 1 ELSE 1 END,
                    window_start = CASE WHEN window_start > ? THEN window_start ELSE excluded.window_start END
                RETURNING window_start, failures
                """,
                [key, nowMS, opened, opened]
            ) { row in
                AddressFailureWindow(
                    startedAt: Timestamp(milliseconds: try row.int64("window_start")), failures: try row.int("failures"))
            }
            return window ?? AddressFailureWindow(startedAt: now, failures: 1)
        }
    }
}
