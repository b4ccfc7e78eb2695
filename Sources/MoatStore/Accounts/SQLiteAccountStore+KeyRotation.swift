public import MoatCore

/// The tables that hold secrets sealed under the master key.
private let sealedTables = ["two_factor", "two_factor_pending"]

extension SQLiteAccountStore {
    /// How many stored secrets each key id seals.
    public func sealedSecretCounts() async throws -> [String: Int] {
        try await database.read { connection in
            var counts: [String: Int] = [:]
            for table in sealedTables {
                let rows = try connection.query("SELECT key_id, COUNT(*) AS n FROM \(table) GROUP BY key_id") { row in
                    (try row.string("key_id"), try row.int("n"))
                }
                for (key, count) in rows { counts[key, default: 0] += count }
            }
            return counts
        }
    }

    /// Re-seals up to `limit` secrets sealed under `keyID` in one write
    /// transaction (the batch commits together, with `progressKey` in
    /// `meta` counting what has been re-sealed so far). Returns how many it
    /// re-sealed: 0 once nothing is sealed under `keyID`.
    ///
    /// The batch runs on the writer, so no other write of those rows
    /// interleaves; only the secret and its key id change (the replay step
    /// and failure counts of a sign-in in flight are untouched).
    public func resealSecrets(
        sealedUnder keyID: String, limit: Int, progressKey: String,
        reseal: @escaping @Sendable (SealedSecret, TenantID, UserID) throws -> SealedSecret
    ) async throws -> Int {
        try await database.write { transaction in
            var done = 0
            for table in sealedTables where done < limit {
                let rows = try transaction.query(
                    "SELECT tenant_id, user_id, secret FROM \(table) WHERE key_id = ? LIMIT ?", [keyID, limit - done]
                ) { row in
                    (TenantID(unchecked: try row.string("tenant_id")), UserID(unchecked: try row.string("user_id")),
                        try row.blob("secret"))
                }
                for (tenant, user, box) in rows {
                    let sealed = try reseal(SealedSecret(keyID: keyID, box: box), tenant, user)
                    _ = try transaction.execute(
                        "UPDATE \(table) SET secret = ?, key_id = ? WHERE tenant_id = ? AND user_id = ? AND key_id = ?",
                        [sealed.box, sealed.keyID, tenant.rawValue, user.rawValue, keyID])
                }
                done += rows.count
            }
            if done > 0 {
                let previous = try transaction.queryFirst("SELECT value FROM meta WHERE key = ?", [progressKey]) {
                    try $0.blob("value")
                }.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
                _ = try transaction.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [progressKey, Array(String(previous + done).utf8)])
            }
            return done
        }
    }

    /// Applies `changes` to `meta` in one transaction (nil deletes a key),
    /// only if nothing is sealed under `unsealedKeyID` when it runs (pass
    /// nil to skip that check). Returns false, changing nothing, when
    /// something still is.
    public func updateMeta(_ changes: [String: String?], ifNothingSealedUnder unsealedKeyID: String? = nil)
        async throws -> Bool
    {
        try await database.write { transaction in
            if let unsealedKeyID {
                for table in sealedTables {
                    let left = try transaction.queryFirst(
                        "SELECT COUNT(*) FROM \(table) WHERE key_id = ?", [unsealedKeyID]) { try $0.int(at: 0) } ?? 0
                    if left > 0 { return false }
                }
            }
            for (key, value) in changes.sorted(by: { $0.key < $1.key }) {
                if let value {
                    _ = try transaction.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        [key, Array(value.utf8)])
                } else {
                    _ = try transaction.execute("DELETE FROM meta WHERE key = ?", [key])
                }
            }
            return true
        }
    }

    /// The `meta` values as text.
    public func metaStrings(_ keys: [String]) async throws -> [String: String] {
        try await database.read { connection in
            var values: [String: String] = [:]
            for key in keys {
                if let value = try connection.queryFirst("SELECT value FROM meta WHERE key = ?", [key], { try $0.blob("value") }) {
                    values[key] = String(decoding: value, as: UTF8.self)
                }
            }
            return values
        }
    }
}
