public import Logging
public import MoatCore

/// The account store on SQLite: MoatCore's `AccountStore` over a
/// ``Database`` with the ``AccountSchema`` migrations.
///
/// Reads run on the reader pool (one snapshot per `read`), writes on the
/// single writer (one SAVEPOINT per `write`, group-committed): a write body
/// that throws leaves nothing behind and its error, `DomainError` included,
/// reaches the caller unchanged.
///
/// Behaves like `MemoryAccountStore`, the reference: same errors
/// (`DomainError.slugTaken`, `DomainError.emailTaken`), same orderings, same
/// conditional updates. Every tenant-owned query is scoped by `tenant_id` in
/// its SQL. Beyond the reference, the schema refuses rows that reference a
/// missing tenant or user, or a user of another tenant (a `StoreError` with
/// reason `CONSTRAINT_FOREIGN_KEY`). A stored row that cannot be read back
/// (an id of the wrong form, an unknown role) fails with reason
/// ``StoreError/Reason/invalidRow``.
///
/// ```swift
/// let store = try await SQLiteAccountStore.open(path: "/var/lib/moat/moat.db", encoder: ProtobufEventEncoder())
/// let tenant = try await store.read { try $0.tenant(slug: "acme") }
/// await store.close()
/// ```
public final class SQLiteAccountStore: AccountStore {
    /// The underlying database (metrics, migration report).
    public let database: Database
    /// Signalled after each write that appended events has committed.
    public let eventSignal = EventSignal()
    /// Receives each write's validity marks once it has committed (or
    /// failed), before `write` returns.
    public let validityMarks = ValidityMarkRelay()
    private let encoder: any EventEncoder

    private init(database: Database, encoder: any EventEncoder) {
        self.database = database
        self.encoder = encoder
    }

    /// Opens (creating it if missing) the database at `path` and applies the
    /// pending ``AccountSchema`` migrations.
    ///
    /// - Parameters:
    ///   - path: the database file; its directory must exist.
    ///   - synchronous: commit durability; `.full` (the default) fsyncs every commit.
    ///   - readerCount: reader connections serving `read`.
    ///   - encoder: turns domain events into outbox payloads.
    ///   - logger: the store's logger.
    public static func open(
        path: String, synchronous: SynchronousMode = .full, readerCount: Int = 4, encoder: any EventEncoder,
        logger: Logger = Logger(label: "moat.store")
    ) async throws -> SQLiteAccountStore {
        try await open(
            configuration: StoreConfiguration(path: path, synchronous: synchronous, readerCount: readerCount),
            encoder: encoder, logger: logger)
    }

    /// Opens the database with a full configuration and applies the pending
    /// ``AccountSchema`` migrations.
    public static func open(
        configuration: StoreConfiguration, encoder: any EventEncoder, logger: Logger = Logger(label: "moat.store")
    ) async throws -> SQLiteAccountStore {
        let database = try await Database.open(
            configuration: configuration, migrations: AccountSchema.migrations, logger: logger)
        return SQLiteAccountStore(database: database, encoder: encoder)
    }

    /// Closes the database: queued writes are committed, later calls fail
    /// with `CLOSED`. Idempotent.
    public func close() async {
        await database.close()
    }

    /// Runs a read-only transaction on one consistent snapshot.
    public func read<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreReader) throws -> T) async throws -> T {
        try await database.read { connection in
            try body(SQLiteAccountReader(db: connection))
        }
    }

    /// Runs a read-only transaction on a reader thread and calls
    /// `completion` there, with no task or continuation in between.
    public func read<T: Sendable>(
        _ body: @escaping @Sendable (any AccountStoreReader) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        database.read({ connection in try body(SQLiteAccountReader(db: connection)) }, completion: completion)
    }

    /// Runs a write transaction; if the body throws, none of its changes are
    /// kept and its error is rethrown as is.
    public func write<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreWriter) throws -> T) async throws -> T {
        let encoder = self.encoder
        let appended = EventAppendMarker()
        let marks = ValidityMarker()
        // `database.write` returned: the changes are committed and visible
        // (or rolled back: a failed write's marks are applied too, dropping
        // cache entries is always safe).
        defer { validityMarks.publish(marks.marks) }
        let result = try await database.write { transaction in
            try body(SQLiteAccountWriter(db: transaction, encoder: encoder, appended: appended, marks: marks))
        }
        if appended.isSet { eventSignal.signal() }
        return result
    }

    /// A daemon-wide fact (e.g. the key file's fingerprint), or nil if unset.
    public func meta(_ key: String) async throws -> [UInt8]? {
        try await database.read { connection in
            try connection.queryFirst("SELECT value FROM meta WHERE key = ?", [key]) { try $0.blob("value") }
        }
    }

    /// Sets (or replaces) a daemon-wide fact, durably.
    public func setMeta(_ key: String, _ value: [UInt8]) async throws {
        try await database.write { transaction in
            try transaction.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value])
        }
    }
}

extension StoreError.Reason {
    /// A stored row holds a value the account store cannot read back (an id
    /// of the wrong form, an unknown enum value): the database was changed
    /// outside the store, or by a newer build.
    public static let invalidRow = StoreError.Reason(rawValue: "INVALID_ROW")
}

// MARK: - Reading

/// The reader methods, in SQL, over a reader connection or the write
/// transaction. Every tenant-owned query has `tenant_id = ?` in its WHERE.
/// Shared by the SQLite and the PostgreSQL store (`PostgresAccountReader`):
/// the SQL is written in the dialect both understand.
protocol SQLiteAccountReading: AccountStoreReader {
    associatedtype Querying: SQLQuerying
    /// Where the SQL runs.
    var db: Querying { get }
}

/// A read transaction's view.
struct SQLiteAccountReader: SQLiteAccountReading {
    let db: SQLiteConnection
}

extension SQLiteAccountReading {
    func tenant(id: TenantID) throws -> Tenant? {
        try db.queryFirst("SELECT \(AccountColumns.tenant) FROM tenants WHERE id = ?", [id.rawValue], RowDecoder.tenant)
    }

    func tenant(slug: String) throws -> Tenant? {
        try db.queryFirst("SELECT \(AccountColumns.tenant) FROM tenants WHERE slug = ?", [slug], RowDecoder.tenant)
    }

    func tenants(afterSlug: String?, limit: Int) throws -> [Tenant] {
        if let afterSlug {
            return try db.query(
                "SELECT \(AccountColumns.tenant) FROM tenants WHERE slug > ? ORDER BY slug LIMIT ?",
                [afterSlug, Self.clamp(limit)], RowDecoder.tenant)
        }
        return try db.query(
            "SELECT \(AccountColumns.tenant) FROM tenants ORDER BY slug LIMIT ?", [Self.clamp(limit)], RowDecoder.tenant)
    }

    func user(tenant: TenantID, id: UserID) throws -> User? {
        try db.queryFirst(
            "SELECT \(AccountColumns.user) FROM users WHERE tenant_id = ? AND id = ?", [tenant.rawValue, id.rawValue],
            RowDecoder.user)
    }

    func user(tenant: TenantID, email: String) throws -> User? {
        try db.queryFirst(
            "SELECT \(AccountColumns.user) FROM users WHERE tenant_id = ? AND email = ?", [tenant.rawValue, email],
            RowDecoder.user)
    }

    func users(tenant: TenantID, afterEmail: String?, limit: Int) throws -> [User] {
        if let afterEmail {
            return try db.query(
                "SELECT \(AccountColumns.user) FROM users WHERE tenant_id = ? AND email > ? ORDER BY email LIMIT ?",
                [tenant.rawValue, afterEmail, Self.clamp(limit)], RowDecoder.user)
        }
        return try db.query(
            "SELECT \(AccountColumns.user) FROM users WHERE tenant_id = ? ORDER BY email LIMIT ?",
            [tenant.rawValue, Self.clamp(limit)], RowDecoder.user)
    }

    func session(tenant: TenantID, tokenHash: [UInt8]) throws -> Session? {
        try db.queryFirst(
            "SELECT \(AccountColumns.session) FROM sessions WHERE tenant_id = ? AND token_hash = ?",
            [tenant.rawValue, tokenHash], RowDecoder.session)
    }

    func sessionForValidate(tenant: TenantID, tokenHash: [UInt8]) throws -> SessionWithUserFacts? {
        try db.queryFirst(
            """
            SELECT \(AccountColumns.sessionForValidate) FROM sessions s
            JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id
            WHERE s.tenant_id = ? AND s.token_hash = ?
            """,
            [tenant.rawValue, tokenHash], RowDecoder.sessionForValidate)
    }

    func session(tenant: TenantID, id: SessionID) throws -> Session? {
        try db.queryFirst(
            "SELECT \(AccountColumns.session) FROM sessions WHERE tenant_id = ? AND id = ?", [tenant.rawValue, id.rawValue],
            RowDecoder.session)
    }

    func sessions(tenant: TenantID, user: UserID) throws -> [Session] {
        try db.query(
            """
            SELECT \(AccountColumns.session) FROM sessions
            WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL
            ORDER BY created_at, id
            """,
            [tenant.rawValue, user.rawValue], RowDecoder.session)
    }

    func passwordReset(tenant: TenantID, tokenHash: [UInt8]) throws -> PasswordResetToken? {
        try db.queryFirst(
            "SELECT \(AccountColumns.reset) FROM password_resets WHERE tenant_id = ? AND token_hash = ?",
            [tenant.rawValue, tokenHash], RowDecoder.reset)
    }

    /// The outbox is the one cross-tenant stream (read by administrators):
    /// the protocol takes no tenant here, and each record carries its own.
    func events(after sequence: Int64, limit: Int) throws -> [EventRecord] {
        try db.query(
            "SELECT \(AccountColumns.event) FROM events WHERE sequence > ? ORDER BY sequence LIMIT ?",
            [sequence, Self.clamp(limit)], RowDecoder.event)
    }

    func securityLog(tenant: TenantID, user: UserID, beforeID: Int64?, limit: Int) throws -> [SecurityLogEntry] {
        if let beforeID {
            return try db.query(
                """
                SELECT \(AccountColumns.logEntry) FROM security_log
                WHERE tenant_id = ? AND user_id = ? AND id < ? ORDER BY id DESC LIMIT ?
                """,
                [tenant.rawValue, user.rawValue, beforeID, Self.clamp(limit)], RowDecoder.logEntry)
        }
        return try db.query(
            "SELECT \(AccountColumns.logEntry) FROM security_log WHERE tenant_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?",
            [tenant.rawValue, user.rawValue, Self.clamp(limit)], RowDecoder.logEntry)
    }

    /// A LIMIT that is never negative (SQLite reads a negative LIMIT as "no limit").
    static func clamp(_ limit: Int) -> Int { max(0, limit) }
}

// MARK: - Writing

/// The writer methods, in SQL, shared by the SQLite writer and the
/// PostgreSQL one (`PostgresAccountWriter`), which overrides the few whose
/// SQL differs.
protocol SQLiteAccountWriting: SQLiteAccountReading, AccountStoreWriter {
    /// Turns domain events into outbox payloads.
    var encoder: any EventEncoder { get }
    /// Set when the body appends an event (the store then wakes long polls).
    var appended: EventAppendMarker? { get }
    /// Records what the body changed that cached Validate answers depend on.
    var marks: ValidityMarker { get }
}

/// A write transaction's view.
struct SQLiteAccountWriter: SQLiteAccountWriting {
    let db: Transaction
    let encoder: any EventEncoder
    /// Set when the body appends an event (the store then wakes long polls).
    var appended: EventAppendMarker? = nil
    /// What the body changed that cached Validate answers depend on (the
    /// store applies it after the commit).
    var marks = ValidityMarker()
}

extension SQLiteAccountWriting {

    func insert(_ tenant: Tenant) throws {
        do {
            var bindings: [any SQLiteBindable] = [tenant.id.rawValue, tenant.slug, tenant.name]
            bindings += Self.policyBindings(tenant.policy)
            bindings += [tenant.createdAt.milliseconds, tenant.status.rawValue, tenant.purgeAfter?.milliseconds]
                as [any SQLiteBindable]
            try db.execute(
                "INSERT INTO tenants (\(AccountColumns.tenant)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", bindings)
        } catch let error as StoreError where error.isUniqueViolation {
            if try slugExists(tenant.slug, except: nil) { throw DomainError.slugTaken }
            throw error
        }
    }

    func update(_ tenant: Tenant) throws {
        var bindings: [any SQLiteBindable] = [tenant.slug, tenant.name]
        bindings += Self.policyBindings(tenant.policy)
        bindings += [
            tenant.createdAt.milliseconds, tenant.status.rawValue, tenant.purgeAfter?.milliseconds, tenant.id.rawValue,
        ] as [any SQLiteBindable]
        do {
            try db.execute(
                """
                UPDATE tenants SET slug = ?, name = ?, min_password_length = ?, session_idle_timeout_seconds = ?,
                    session_absolute_lifetime_seconds = ?, require_two_factor = ?, lockout_threshold = ?,
                    lockout_base_delay_seconds = ?, lockout_max_delay_seconds = ?, max_sessions_per_user = ?,
                    created_at = ?, status = ?, purge_after = ?
                WHERE id = ?
                """,
                bindings)
        } catch let error as StoreError where error.isUniqueViolation {
            if try slugExists(tenant.slug, except: tenant.id) { throw DomainError.slugTaken }
            throw error
        }
        marks.tenant(tenant.id)
    }

    func insert(_ user: User) throws {
        do {
            try db.execute(
                "INSERT INTO users (\(AccountColumns.user)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    user.id.rawValue, user.tenantID.rawValue, user.email, user.passwordHash, user.role.rawValue,
                    user.status.rawValue, user.createdAt.milliseconds, user.passwordChangedAt.milliseconds,
                    user.failedSignIns, user.lockedUntil?.milliseconds, user.twoFactorEnabled,
                    user.purgeAfter?.milliseconds,
                ])
        } catch let error as StoreError where error.isUniqueViolation {
            if try emailExists(tenant: user.tenantID, email: user.email, except: nil) { throw DomainError.emailTaken }
            throw error
        }
    }

    func update(_ user: User) throws {
        // What Validate reports before the change, to mark only changes that
        // matter (sign-in counters change often and do not).
        let before = try db.queryFirst(
            "SELECT email, role, status, two_factor_enabled FROM users WHERE tenant_id = ? AND id = ?",
            [user.tenantID.rawValue, user.id.rawValue]
        ) { row in
            (try row.string("email"), try row.string("role"), try row.string("status"), try row.bool("two_factor_enabled"))
        }
        do {
            try db.execute(
                """
                UPDATE users SET email = ?, password_hash = ?, role = ?, status = ?, created_at = ?,
                    password_changed_at = ?, failed_sign_ins = ?, locked_until = ?, two_factor_enabled = ?,
                    purge_after = ?
                WHERE tenant_id = ? AND id = ?
                """,
                [
                    user.email, user.passwordHash, user.role.rawValue, user.status.rawValue,
                    user.createdAt.milliseconds, user.passwordChangedAt.milliseconds, user.failedSignIns,
                    user.lockedUntil?.milliseconds, user.twoFactorEnabled, user.purgeAfter?.milliseconds,
                    user.tenantID.rawValue, user.id.rawValue,
                ])
        } catch let error as StoreError where error.isUniqueViolation {
            if try emailExists(tenant: user.tenantID, email: user.email, except: user.id) {
                throw DomainError.emailTaken
            }
            throw error
        }
        if let before,
            before != (user.email, user.role.rawValue, user.status.rawValue, user.twoFactorEnabled)
        {
            marks.user(user.id)
        }
    }

    func insert(_ session: Session) throws {
        try db.execute(
            "INSERT INTO sessions (\(AccountColumns.session)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                session.id.rawValue, session.tenantID.rawValue, session.userID.rawValue, session.tokenHash,
                session.client.userAgent, session.client.ip, session.client.location, session.client.deviceName,
                session.createdAt.milliseconds, session.lastActiveAt.milliseconds,
                session.absoluteExpiresAt.milliseconds, session.idleTimeoutSeconds, session.secondFactorSatisfied,
                session.revokedAt?.milliseconds, session.revokeReason,
            ])
    }

    func revokeSession(tenant: TenantID, id: SessionID, at: Timestamp, reason: String) throws -> Bool {
        let owner = try db.queryFirst(
            """
            UPDATE sessions SET revoked_at = ?, revoke_reason = ?
            WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL
            RETURNING user_id
            """,
            [at.milliseconds, reason, tenant.rawValue, id.rawValue]
        ) { row in try RowDecoder.id(UserID.self, row, "user_id", table: "sessions") }
        guard let owner else { return false }
        marks.user(owner)
        return true
    }

    func revokeSessions(tenant: TenantID, user: UserID, except: SessionID?, at: Timestamp, reason: String) throws
        -> [SessionID]
    {
        let revoked = try db.query(
            """
            UPDATE sessions SET revoked_at = ?, revoke_reason = ?
            WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL AND (CAST(? AS TEXT) IS NULL OR id <> ?)
            RETURNING id
            """,
            [at.milliseconds, reason, tenant.rawValue, user.rawValue, except?.rawValue, except?.rawValue]
        ) { row in try RowDecoder.id(SessionID.self, row, "id", table: "sessions") }
        if !revoked.isEmpty { marks.user(user) }
        // RETURNING has no defined order; the reference sorts by id.
        return revoked.sorted { $0.rawValue < $1.rawValue }
    }

    func insert(_ reset: PasswordResetToken) throws {
        try db.execute(
            "INSERT INTO password_resets (\(AccountColumns.reset)) VALUES (?, ?, ?, ?, ?, ?)",
            [
                reset.tokenHash, reset.tenantID.rawValue, reset.userID.rawValue, reset.createdAt.milliseconds,
                reset.expiresAt.milliseconds, reset.usedAt?.milliseconds,
            ])
    }

    func consumePasswordReset(tenant: TenantID, tokenHash: [UInt8], at: Timestamp) throws -> PasswordResetToken? {
        // One statement: the check and the mark cannot be separated.
        try db.queryFirst(
            """
            UPDATE password_resets SET used_at = ?
            WHERE tenant_id = ? AND token_hash = ? AND used_at IS NULL AND expires_at > ?
            RETURNING \(AccountColumns.reset)
            """,
            [at.milliseconds, tenant.rawValue, tokenHash, at.milliseconds], RowDecoder.reset)
    }

    func append(_ event: DomainEvent, tenant: TenantID, at: Timestamp) throws {
        try db.execute(
            "INSERT INTO events (tenant_id, type, subject, payload, created_at) VALUES (?, ?, ?, ?, ?)",
            [tenant.rawValue, event.type, event.subject, encoder.encode(event), at.milliseconds])
        appended?.set()
    }

    func append(_ entry: SecurityLogEntry) throws {
        // The id is the store's to assign, as in the reference.
        try db.execute(
            """
            INSERT INTO security_log (tenant_id, user_id, kind, ip, user_agent, detail, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """,
            [
                entry.tenantID.rawValue, entry.userID.rawValue, entry.kind.rawValue, entry.ip, entry.userAgent,
                entry.detail, entry.createdAt.milliseconds,
            ])
    }

    // MARK: Helpers

    private static func policyBindings(_ policy: TenantPolicy) -> [any SQLiteBindable] {
        [
            policy.minPasswordLength, policy.sessionIdleTimeoutSeconds, policy.sessionAbsoluteLifetimeSeconds,
            policy.requireTwoFactor, policy.lockoutThreshold, policy.lockoutBaseDelaySeconds,
            policy.lockoutMaxDelaySeconds, policy.maxSessionsPerUser,
        ]
    }

    /// Whether another tenant (not `except`) has the slug; tells a slug clash
    /// from any other UNIQUE violation.
    private func slugExists(_ slug: String, except: TenantID?) throws -> Bool {
        try db.queryFirst(
            "SELECT 1 FROM tenants WHERE slug = ? AND (CAST(? AS TEXT) IS NULL OR id <> ?)", [slug, except?.rawValue, except?.rawValue]
        ) { _ in true } ?? false
    }

    /// Whether another user (not `except`) of the tenant has the email.
    private func emailExists(tenant: TenantID, email: String, except: UserID?) throws -> Bool {
        try db.queryFirst(
            "SELECT 1 FROM users WHERE tenant_id = ? AND email = ? AND (CAST(? AS TEXT) IS NULL OR id <> ?)",
            [tenant.rawValue, email, except?.rawValue, except?.rawValue]
        ) { _ in true } ?? false
    }
}

// MARK: - Rows

/// The column lists, in the order the INSERTs bind them.
enum AccountColumns {
    static let tenant = """
        id, slug, name, min_password_length, session_idle_timeout_seconds, session_absolute_lifetime_seconds, \
        require_two_factor, lockout_threshold, lockout_base_delay_seconds, lockout_max_delay_seconds, \
        max_sessions_per_user, created_at, status, purge_after
        """
    static let user = """
        id, tenant_id, email, password_hash, role, status, created_at, password_changed_at, failed_sign_ins, \
        locked_until, two_factor_enabled, purge_after
        """
    static let session = """
        id, tenant_id, user_id, token_hash, user_agent, ip, location, device_name, created_at, last_active_at, \
        absolute_expires_at, idle_timeout_seconds, second_factor_satisfied, revoked_at, revoke_reason
        """
    /// The session's columns (as `s`) and the user's (as `u`) that
    /// Validate needs, for `sessionForValidate`.
    static let sessionForValidate = """
        s.id, s.tenant_id, s.user_id, s.token_hash, s.user_agent, s.ip, s.location, s.device_name, s.created_at, \
        s.last_active_at, s.absolute_expires_at, s.idle_timeout_seconds, s.second_factor_satisfied, s.revoked_at, \
        s.revoke_reason, u.email AS user_email, u.role AS user_role, u.status AS user_status, \
        u.two_factor_enabled AS user_two_factor_enabled
        """
    static let reset = "token_hash, tenant_id, user_id, created_at, expires_at, used_at"
    static let event = "sequence, tenant_id, type, subject, payload, created_at"
    static let logEntry = "id, tenant_id, user_id, kind, ip, user_agent, detail, created_at"
}

/// Rows to model values. Never traps: a value the model cannot hold throws
/// `INVALID_ROW` naming the table and column.
enum RowDecoder {
    static func tenant(_ row: some SQLRow) throws -> Tenant {
        var policy = TenantPolicy()
        policy.minPasswordLength = try row.int("min_password_length")
        policy.sessionIdleTimeoutSeconds = try row.int64("session_idle_timeout_seconds")
        policy.sessionAbsoluteLifetimeSeconds = try row.int64("session_absolute_lifetime_seconds")
        policy.requireTwoFactor = try row.bool("require_two_factor")
        policy.lockoutThreshold = try row.int("lockout_threshold")
        policy.lockoutBaseDelaySeconds = try row.int64("lockout_base_delay_seconds")
        policy.lockoutMaxDelaySeconds = try row.int64("lockout_max_delay_seconds")
        policy.maxSessionsPerUser = try row.int("max_sessions_per_user")
        return Tenant(
            id: try id(TenantID.self, row, "id", table: "tenants"), slug: try row.string("slug"),
            name: try row.string("name"), policy: policy, createdAt: try timestamp(row, "created_at"),
            status: try enumeration(TenantStatus.self, row, "status", table: "tenants"),
            purgeAfter: try optionalTimestamp(row, "purge_after"))
    }

    static func user(_ row: some SQLRow) throws -> User {
        User(
            id: try id(UserID.self, row, "id", table: "users"),
            tenantID: try id(TenantID.self, row, "tenant_id", table: "users"),
            email: try row.string("email"), passwordHash: try row.string("password_hash"),
            role: try enumeration(TenantRole.self, row, "role", table: "users"),
            status: try enumeration(UserStatus.self, row, "status", table: "users"),
            createdAt: try timestamp(row, "created_at"), passwordChangedAt: try timestamp(row, "password_changed_at"),
            failedSignIns: try row.int("failed_sign_ins"), lockedUntil: try optionalTimestamp(row, "locked_until"),
            twoFactorEnabled: try row.bool("two_factor_enabled"), purgeAfter: try optionalTimestamp(row, "purge_after"))
    }

    static func session(_ row: some SQLRow) throws -> Session {
        Session(
            id: try id(SessionID.self, row, "id", table: "sessions"),
            tenantID: try id(TenantID.self, row, "tenant_id", table: "sessions"),
            userID: try id(UserID.self, row, "user_id", table: "sessions"),
            tokenHash: try row.blob("token_hash"),
            client: ClientDetails(
                userAgent: try row.string("user_agent"), ip: try row.string("ip"),
                location: try row.string("location"), deviceName: try row.string("device_name")),
            createdAt: try timestamp(row, "created_at"), lastActiveAt: try timestamp(row, "last_active_at"),
            absoluteExpiresAt: try timestamp(row, "absolute_expires_at"),
            idleTimeoutSeconds: try row.int64("idle_timeout_seconds"),
            secondFactorSatisfied: try row.bool("second_factor_satisfied"),
            revokedAt: try optionalTimestamp(row, "revoked_at"), revokeReason: try row.optionalString("revoke_reason"))
    }

    static func sessionForValidate(_ row: some SQLRow) throws -> SessionWithUserFacts {
        SessionWithUserFacts(
            session: try session(row), email: try row.string("user_email"),
            role: try enumeration(TenantRole.self, row, "user_role", table: "users"),
            twoFactorEnabled: try row.bool("user_two_factor_enabled"),
            userStatus: try enumeration(UserStatus.self, row, "user_status", table: "users"))
    }

    static func reset(_ row: some SQLRow) throws -> PasswordResetToken {
        PasswordResetToken(
            tokenHash: try row.blob("token_hash"),
            tenantID: try id(TenantID.self, row, "tenant_id", table: "password_resets"),
            userID: try id(UserID.self, row, "user_id", table: "password_resets"),
            createdAt: try timestamp(row, "created_at"), expiresAt: try timestamp(row, "expires_at"),
            usedAt: try optionalTimestamp(row, "used_at"))
    }

    static func event(_ row: some SQLRow) throws -> EventRecord {
        EventRecord(
            sequence: try row.int64("sequence"), tenantID: try id(TenantID.self, row, "tenant_id", table: "events"),
            type: try row.string("type"), subject: try row.string("subject"), payload: try row.blob("payload"),
            createdAt: try timestamp(row, "created_at"))
    }

    static func logEntry(_ row: some SQLRow) throws -> SecurityLogEntry {
        SecurityLogEntry(
            id: try row.int64("id"), tenantID: try id(TenantID.self, row, "tenant_id", table: "security_log"),
            userID: try id(UserID.self, row, "user_id", table: "security_log"),
            kind: try enumeration(SecurityEventKind.self, row, "kind", table: "security_log"),
            ip: try row.string("ip"), userAgent: try row.string("user_agent"), detail: try row.string("detail"),
            createdAt: try timestamp(row, "created_at"))
    }

    static func id<ID: PrefixedID>(_ type: ID.Type, _ row: some SQLRow, _ column: String, table: String) throws -> ID {
        let text = try row.string(column)
        guard let id = ID(text) else {
            throw invalid(table, column, "\(quoted(text)) is not a well-formed \(ID.prefix)… identifier")
        }
        return id
    }

    static func enumeration<Value: RawRepresentable>(
        _ type: Value.Type, _ row: some SQLRow, _ column: String, table: String
    ) throws -> Value where Value.RawValue == String {
        let text = try row.string(column)
        guard let value = Value(rawValue: text) else {
            throw invalid(table, column, "\(quoted(text)) is not a known \(Value.self)")
        }
        return value
    }

    static func timestamp(_ row: some SQLRow, _ column: String) throws -> Timestamp {
        Timestamp(milliseconds: try row.int64(column))
    }

    static func optionalTimestamp(_ row: some SQLRow, _ column: String) throws -> Timestamp? {
        try row.optionalInt64(column).map { Timestamp(milliseconds: $0) }
    }

    private static func invalid(_ table: String, _ column: String, _ problem: String) -> StoreError {
        StoreError(.invalidRow, message: "\(table).\(column): \(problem)")
    }

    /// A value for a log message: quoted, at most 64 characters.
    private static func quoted(_ text: String) -> String {
        "\"" + (text.count > 64 ? String(text.prefix(64)) + "…" : text) + "\""
    }
}
