public import MoatCore

/// What master-key loading and rotation need from a store, on SQLite and on
/// PostgreSQL: the `meta` facts naming the keys, and the sealed secrets.
public protocol MasterKeyStore: AccountStore {
    /// How many stored secrets each key id seals.
    func sealedSecretCounts() async throws -> [String: Int]

    /// Re-seals up to `limit` secrets sealed under `keyID` in one write
    /// transaction (the batch commits together, with `progressKey` in
    /// `meta` counting what has been re-sealed so far). Returns how many it
    /// re-sealed: 0 once nothing is sealed under `keyID`. Only the secret
    /// and its key id change (the replay step and failure counts of a
    /// sign-in in flight are untouched).
    func resealSecrets(
        sealedUnder keyID: String, limit: Int, progressKey: String,
        reseal: @escaping @Sendable (SealedSecret, TenantID, UserID) throws -> SealedSecret
    ) async throws -> Int

    /// Applies `changes` to `meta` in one transaction (nil deletes a key),
    /// only if nothing is sealed under `unsealedKeyID` when it runs (nil
    /// skips that check). Returns false, changing nothing, when something
    /// still is.
    func updateMeta(_ changes: [String: String?], ifNothingSealedUnder unsealedKeyID: String?) async throws -> Bool

    /// Records `value` under `key` unless a value is recorded, and returns
    /// the value now recorded: of instances starting together on one empty
    /// database with different values, one wins and the others see its value.
    func recordMetaIfAbsent(_ key: String, _ value: String) async throws -> String

    /// The `meta` values as text.
    func metaStrings(_ keys: [String]) async throws -> [String: String]
}

/// The tables that hold secrets sealed under the master key.
private let sealedTables = ["two_factor", "two_factor_pending"]

/// The key-rotation SQL, in the dialect both databases accept.
enum KeyRotationSQL {
    static func sealedSecretCounts(_ db: some SQLQuerying) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for table in sealedTables {
            let rows = try db.query("SELECT key_id, COUNT(*) AS n FROM \(table) GROUP BY key_id", []) { row in
                (try row.string("key_id"), try row.int("n"))
            }
            for (key, count) in rows { counts[key, default: 0] += count }
        }
        return counts
    }

    static func resealSecrets(
        _ db: some SQLQuerying, sealedUnder keyID: String, limit: Int, progressKey: String,
        reseal: (SealedSecret, TenantID, UserID) throws -> SealedSecret
    ) throws -> Int {
        var done = 0
        for table in sealedTables where done < limit {
            let rows = try db.query(
                "SELECT tenant_id, user_id, secret FROM \(table) WHERE key_id = ? ORDER BY tenant_id, user_id LIMIT ?",
                [keyID, limit - done]
            ) { row in
                (TenantID(unchecked: try row.string("tenant_id")), UserID(unchecked: try row.string("user_id")),
                    try row.blob("secret"))
            }
            for (tenant, user, box) in rows {
                let sealed = try reseal(SealedSecret(keyID: keyID, box: box), tenant, user)
                try db.execute(
                    "UPDATE \(table) SET secret = ?, key_id = ? WHERE tenant_id = ? AND user_id = ? AND key_id = ?",
                    [sealed.box, sealed.keyID, tenant.rawValue, user.rawValue, keyID])
            }
            done += rows.count
        }
        if done > 0 {
            let previous = try db.queryFirst("SELECT value FROM meta WHERE key = ?", [progressKey]) {
                try $0.blob("value")
            }.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
            try db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [progressKey, Array(String(previous + done).utf8)])
        }
        return done
    }

    static func updateMeta(
        _ db: some SQLQuerying, _ changes: [String: String?], ifNothingSealedUnder unsealedKeyID: String?
    ) throws -> Bool {
        if let unsealedKeyID {
            for table in sealedTables {
                let left = try db.queryFirst(
                    "SELECT COUNT(*) AS n FROM \(table) WHERE key_id = ?", [unsealedKeyID]) { try $0.int("n") } ?? 0
                if left > 0 { return false }
            }
        }
        for (key, value) in changes.sorted(by: { $0.key < $1.key }) {
            if let value {
                try db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [key, Array(value.utf8)])
            } else {
                try db.execute("DELETE FROM meta WHERE key = ?", [key])
            }
        }
        return true
    }

    static func recordMetaIfAbsent(_ db: some SQLQuerying, _ key: String, _ value: String) throws -> String {
        try db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", [key, Array(value.utf8)])
        let recorded = try db.queryFirst("SELECT value FROM meta WHERE key = ?", [key]) { try $0.blob("value") }
        return recorded.map { String(decoding: $0, as: UTF8.self) } ?? value
    }

    static func metaStrings(_ db: some SQLQuerying, _ keys: [String]) throws -> [String: String] {
        var values: [String: String] = [:]
        for key in keys {
            if let value = try db.queryFirst("SELECT value FROM meta WHERE key = ?", [key], { try $0.blob("value") }) {
                values[key] = String(decoding: value, as: UTF8.self)
            }
        }
        return values
    }
}

extension SQLiteAccountStore: MasterKeyStore {
    /// How many stored secrets each key id seals.
    public func sealedSecretCounts() async throws -> [String: Int] {
        try await database.read { try KeyRotationSQL.sealedSecretCounts($0) }
    }

    /// See ``MasterKeyStore/resealSecrets(sealedUnder:limit:progressKey:reseal:)``. The batch
    /// runs on the writer, so no other write of those rows interleaves.
    public func resealSecrets(
        sealedUnder keyID: String, limit: Int, progressKey: String,
        reseal: @escaping @Sendable (SealedSecret, TenantID, UserID) throws -> SealedSecret
    ) async throws -> Int {
        try await database.write { transaction in
            try KeyRotationSQL.resealSecrets(
                transaction, sealedUnder: keyID, limit: limit, progressKey: progressKey, reseal: reseal)
        }
    }

    /// See ``MasterKeyStore/updateMeta(_:ifNothingSealedUnder:)``.
    public func updateMeta(_ changes: [String: String?], ifNothingSealedUnder unsealedKeyID: String? = nil)
        async throws -> Bool
    {
        try await database.write { try KeyRotationSQL.updateMeta($0, changes, ifNothingSealedUnder: unsealedKeyID) }
    }

    /// See ``MasterKeyStore/recordMetaIfAbsent(_:_:)`` (one process owns the file: no race to lose).
    public func recordMetaIfAbsent(_ key: String, _ value: String) async throws -> String {
        try await database.write { try KeyRotationSQL.recordMetaIfAbsent($0, key, value) }
    }

    /// The `meta` values as text.
    public func metaStrings(_ keys: [String]) async throws -> [String: String] {
        try await database.read { try KeyRotationSQL.metaStrings($0, keys) }
    }
}

extension PostgresAccountStore: MasterKeyStore {
    /// How many stored secrets each key id seals.
    public func sealedSecretCounts() async throws -> [String: Int] {
        try await database.read { try KeyRotationSQL.sealedSecretCounts($0) }
    }

    /// See ``MasterKeyStore/resealSecrets(sealedUnder:limit:progressKey:reseal:)``. A
    /// serializable transaction: a concurrent write of those rows makes one
    /// of the two retry (the body may run more than once).
    public func resealSecrets(
        sealedUnder keyID: String, limit: Int, progressKey: String,
        reseal: @escaping @Sendable (SealedSecret, TenantID, UserID) throws -> SealedSecret
    ) async throws -> Int {
        try await database.write { db in
            try KeyRotationSQL.resealSecrets(db, sealedUnder: keyID, limit: limit, progressKey: progressKey, reseal: reseal)
        }
    }

    /// See ``MasterKeyStore/updateMeta(_:ifNothingSealedUnder:)``.
    public func updateMeta(_ changes: [String: String?], ifNothingSealedUnder unsealedKeyID: String? = nil)
        async throws -> Bool
    {
        try await database.write { try KeyRotationSQL.updateMeta($0, changes, ifNothingSealedUnder: unsealedKeyID) }
    }

    /// See ``MasterKeyStore/recordMetaIfAbsent(_:_:)``: insert-if-absent, so
    /// of instances starting together the first to commit wins.
    public func recordMetaIfAbsent(_ key: String, _ value: String) async throws -> String {
        try await database.write { try KeyRotationSQL.recordMetaIfAbsent($0, key, value) }
    }

    /// The `meta` values as text.
    public func metaStrings(_ keys: [String]) async throws -> [String: String] {
        try await database.read { try KeyRotationSQL.metaStrings($0, keys) }
    }
}
