/// The account store: tenants, users, sessions, reset tokens, the event
/// outbox and the security log.
///
/// Work happens in transactions: `read` sees one consistent snapshot;
/// `write` runs its body atomically (all of it commits, or none) and returns
/// only once the change is durable. Bodies are synchronous and short: slow
/// work (password hashing) happens before a transaction starts.
///
/// Every method that touches tenant data takes the tenant: scoping is the
/// store's job, not the caller's habit. Implementations: `MemoryAccountStore`
/// (tests) and MoatStore's SQLite store.
public protocol AccountStore: Sendable {
    /// Runs a read-only transaction.
    func read<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreReader) throws -> T) async throws -> T
    /// Runs a read-only transaction and hands its result to `completion`,
    /// without a task: the store calls `completion` on its own thread once
    /// the body ran (the Validate miss path answers from there, with no
    /// continuation or executor hop). `completion` must be quick and must
    /// not block. The default runs ``read(_:)`` in a task.
    func read<T: Sendable>(
        _ body: @escaping @Sendable (any AccountStoreReader) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void)
    /// Runs a write transaction. If the body throws, nothing it did is kept.
    func write<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreWriter) throws -> T) async throws -> T
    /// Where each write's ``ValidityMarks`` go after its commit (also after
    /// a failed write: dropping a cache entry is always safe), before
    /// `write` returns.
    var validityMarks: ValidityMarkRelay { get }
}

/// Queries, inside a transaction.
public protocol AccountStoreReader:
    TwoFactorStoreReader, DeletionStoreReader, EventStoreReader, TeamStoreReader, SignInThrottleStoreReader
{
    func tenant(id: TenantID) throws -> Tenant?
    func tenant(slug: String) throws -> Tenant?
    /// Tenants ordered by slug, after `afterSlug` (exclusive).
    func tenants(afterSlug: String?, limit: Int) throws -> [Tenant]

    func user(tenant: TenantID, id: UserID) throws -> User?
    /// By normalized email.
    func user(tenant: TenantID, email: String) throws -> User?
    /// Users ordered by email, after `afterEmail` (exclusive).
    func users(tenant: TenantID, afterEmail: String?, limit: Int) throws -> [User]

    func session(tenant: TenantID, tokenHash: [UInt8]) throws -> Session?
    func session(tenant: TenantID, id: SessionID) throws -> Session?
    /// The session with a token hash and what Validate needs of its user,
    /// in one lookup (nil if either is missing). Revoked and expired
    /// sessions are returned too: ``SessionLiveness`` judges them.
    func sessionForValidate(tenant: TenantID, tokenHash: [UInt8]) throws -> SessionWithUserFacts?
    /// The user's sessions that are not revoked (expired ones included;
    /// callers judge expiry with their clock).
    func sessions(tenant: TenantID, user: UserID) throws -> [Session]

    func passwordReset(tenant: TenantID, tokenHash: [UInt8]) throws -> PasswordResetToken?

    /// Outbox events with a sequence above `after`, in sequence order.
    func events(after sequence: Int64, limit: Int) throws -> [EventRecord]

    /// A user's security log, newest first, ids below `beforeID`.
    func securityLog(tenant: TenantID, user: UserID, beforeID: Int64?, limit: Int) throws -> [SecurityLogEntry]
}

/// A session and the facts about its user that Validate answers with, as
/// ``AccountStoreReader/sessionForValidate(tenant:tokenHash:)`` reads them.
public struct SessionWithUserFacts: Sendable, Equatable {
    public var session: Session
    public var email: String
    public var role: TenantRole
    public var twoFactorEnabled: Bool
    public var userStatus: UserStatus

    public init(session: Session, email: String, role: TenantRole, twoFactorEnabled: Bool, userStatus: UserStatus) {
        self.session = session
        self.email = email
        self.role = role
        self.twoFactorEnabled = twoFactorEnabled
        self.userStatus = userStatus
    }
}

extension AccountStore {
    public func read<T: Sendable>(
        _ body: @escaping @Sendable (any AccountStoreReader) throws -> T,
        completion: @escaping @Sendable (Result<T, any Error>) -> Void
    ) {
        Task {
            do {
                completion(.success(try await read(body)))
            } catch {
                completion(.failure(error))
            }
        }
    }
}

extension AccountStoreReader {
    /// Two lookups, session then user; stores override it with one query.
    public func sessionForValidate(tenant: TenantID, tokenHash: [UInt8]) throws -> SessionWithUserFacts? {
        guard let session = try self.session(tenant: tenant, tokenHash: tokenHash),
            let user = try self.user(tenant: tenant, id: session.userID)
        else { return nil }
        return SessionWithUserFacts(
            session: session, email: user.email, role: user.role, twoFactorEnabled: user.twoFactorEnabled,
            userStatus: user.status)
    }
}

/// Changes, inside a write transaction.
///
/// A method that can make a cached Validate answer wrong (it revokes a
/// session, changes a user's status, role, email or 2FA state, or changes a
/// tenant) records ``ValidityMarks`` for what it touched; the store applies
/// them after the commit. `ValidityMarkTests` classifies every method of
/// these protocols and fails for one it does not know.
public protocol AccountStoreWriter:
    AccountStoreReader, TwoFactorStoreWriter, DeletionStoreWriter, EventStoreWriter, TeamStoreWriter,
    SignInThrottleStoreWriter
{
    /// Throws ALREADY_EXISTS (`SLUG_TAKEN`) for a used slug.
    func insert(_ tenant: Tenant) throws
    func update(_ tenant: Tenant) throws

    /// Throws ALREADY_EXISTS (`EMAIL_TAKEN`) for an email used in the tenant.
    func insert(_ user: User) throws
    func update(_ user: User) throws

    func insert(_ session: Session) throws
    /// Revokes one live session; false if it was not live (or not there).
    func revokeSession(tenant: TenantID, id: SessionID, at: Timestamp, reason: String) throws -> Bool
    /// Revokes every live session of the user except `except`; returns the
    /// revoked ids.
    func revokeSessions(tenant: TenantID, user: UserID, except: SessionID?, at: Timestamp, reason: String) throws
        -> [SessionID]

    /// Raises sessions' last-active times (never lowers them). Each touch
    /// names its tenant.
    func touchSessions(_ touches: [SessionCache.Touch]) throws
    /// Deletes the tenant's sessions that ended before `endedBefore`:
    /// revoked then, or past their absolute lifetime or idle timeout then.
    /// Returns how many.
    func deleteEndedSessions(tenant: TenantID, endedBefore: Timestamp) throws -> Int

    func insert(_ reset: PasswordResetToken) throws
    /// Marks the token used if it is unused and unexpired at `at`, and
    /// returns it; nil otherwise. Atomic: one token, one use.
    func consumePasswordReset(tenant: TenantID, tokenHash: [UInt8], at: Timestamp) throws -> PasswordResetToken?

    /// Marks every unused reset token of the user used at `at`.
    func discardPasswordResets(tenant: TenantID, user: UserID, at: Timestamp) throws

    /// Appends an event to the outbox, in this transaction.
    func append(_ event: DomainEvent, tenant: TenantID, at: Timestamp) throws
    /// Appends a security-log line, in this transaction.
    func append(_ entry: SecurityLogEntry) throws
}

extension DomainError {
    /// The store's answer to a duplicate slug.
    public static let slugTaken = DomainError(.alreadyExists, .slugTaken, "a tenant with this slug exists")
    /// The store's answer to a duplicate email in a tenant.
    public static let emailTaken = DomainError(.alreadyExists, .emailTaken, "a user with this email exists")
}

extension AccountStoreWriter {
    /// Revokes the user's live sessions (but `except`) and announces each
    /// with a `session.revoked` event, in this transaction.
    public func revokeSessionsAnnouncing(
        tenant: TenantID, user: UserID, except: SessionID? = nil, at now: Timestamp, reason: String
    ) throws -> [SessionID] {
        let revoked = try revokeSessions(tenant: tenant, user: user, except: except, at: now, reason: reason)
        for id in revoked {
            try append(.sessionRevoked(sessionID: id, userID: user, reason: reason), tenant: tenant, at: now)
        }
        return revoked
    }
}
