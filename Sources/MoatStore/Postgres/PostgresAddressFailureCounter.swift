public import MoatCore

/// The per-address sign-in failure counter in the shared PostgreSQL
/// database (table `address_failures`): every moatd on the database counts
/// into the same windows, so an address stuffing credentials across the
/// fleet meets one limit, and counts survive restarts. Each count is one
/// serializable upsert (retried on conflict), so none is lost.
public struct PostgresAddressFailureCounter: AddressFailureCounter {
    let database: PostgresDatabase

    /// A counter in the store's database.
    public init(store: PostgresAccountStore) { self.database = store.database }

    /// The open window of `key`, if any.
    public func window(key: String, at now: Timestamp, windowSeconds: Int64) async throws -> AddressFailureWindow? {
        let opened = now.adding(seconds: -windowSeconds).milliseconds
        return try await database.read { db in
            try db.queryFirst(
                "SELECT window_start, failures FROM address_failures WHERE address = ? AND window_start > ?",
                [key, opened]
            ) { row in
                AddressFailureWindow(
                    startedAt: Timestamp(milliseconds: try row.int64("window_start")), failures: try row.int("failures"))
            }
        }
    }

    /// Counts one failure: into the open window, or a new one from `now`;
    /// windows that ended are deleted on the way (bounding the table by the
    /// addresses that failed within one window).
    @discardableResult
    public func recordFailure(key: String, at now: Timestamp, windowSeconds: Int64) async throws -> AddressFailureWindow {
        let opened = now.adding(seconds: -windowSeconds).milliseconds
        let nowMS = now.milliseconds
        return try await database.write { db in
            try db.execute("DELETE FROM address_failures WHERE window_start <= ? AND address <> ?", [opened, key])
            let window = try db.queryFirst(
                """
                INSERT INTO address_failures (address, window_start, failures) VALUES (?, ?, 1)
                ON CONFLICT (address) DO UPDATE SET
                    failures = CASE WHEN address_failures.window_start > ? THEN address_failures.failures + 1 ELSE 1 END,
                    window_start = CASE WHEN address_failures.window_start > ? THEN address_failures.window_start
                        ELSE excluded.window_start END
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
