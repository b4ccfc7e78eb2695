import Synchronization

/// The account store in memory: for tests of the domain, and as the
/// reference behaviour the SQLite store must match.
///
/// A write works on a copy of the state and publishes it only if the body
/// returns, so a throwing body changes nothing.
public final class MemoryAccountStore: AccountStore {
    struct State: Sendable {
        var tenants: [TenantID: Tenant] = [:]
        var users: [UserID: User] = [:]
        var sessions: [SessionID: Session] = [:]
        var resets: [[UInt8]: PasswordResetToken] = [:]
        var events: [EventRecord] = []
        var securityLog: [SecurityLogEntry] = []
        var nextSequence: Int64 = 1
        var nextLogID: Int64 = 1
        var twoFactor: [UserID: TwoFactorCredential] = [:]
        var pendingTwoFactor: [UserID: PendingTwoFactor] = [:]
        var recoveryCodes: [UserID: [RecoveryCode]] = [:]
        var challenges: [[UInt8]: SignInChallenge] = [:]
        var eventConsumers: [String: EventConsumer] = [:]
        var teams: [TeamID: Team] = [:]
        var teamMembers: [TeamMemberKey: TeamMember] = [:]
        var teamInvitations: [InvitationID: TeamInvitation] = [:]
        var unknownEmails: [UnknownEmailKey: (lockout: Lockout, updatedAt: Timestamp)] = [:]
    }

    private let state = Mutex(State())
    private let encoder: any EventEncoder
    /// Signalled after each write that appended events has returned.
    public let eventSignal = EventSignal()
    /// Receives each write's validity marks, after it is published.
    public let validityMarks = ValidityMarkRelay()

    /// Creates an empty store.
    public init(encoder: any EventEncoder) {
        self.encoder = encoder
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreReader) throws -> T) async throws -> T {
        let snapshot = state.withLock { $0 }
        return try body(MemoryTransaction(state: snapshot, encoder: encoder))
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreWriter) throws -> T) async throws -> T {
        let marker = ValidityMarker()
        // After the change is published (or dropped: a failed body's marks
        // are applied too, dropping cache entries is always safe), before
        // returning.
        defer { validityMarks.publish(marker.marks) }
        let (result, appended) = try state.withLock { state in
            let transaction = MemoryTransaction(state: state, encoder: encoder, marks: marker)
            let result = try body(transaction)
            let appended = transaction.state.nextSequence != state.nextSequence
            state = transaction.state
            return (result, appended)
        }
        if appended { eventSignal.signal() }
        return result
    }

    /// Every event in the outbox (tests).
    public var allEvents: [EventRecord] { state.withLock { $0.events } }

    /// Every security-log entry (tests).
    public var allSecurityLog: [SecurityLogEntry] { state.withLock { $0.securityLog } }
}

final class MemoryTransaction: AccountStoreWriter {
    var state: MemoryAccountStore.State
    let encoder: any EventEncoder
    /// What this write changed that cached Validate answers depend on.
    let marks: ValidityMarker

    init(state: MemoryAccountStore.State, encoder: any EventEncoder, marks: ValidityMarker = ValidityMarker()) {
        self.state = state
        self.encoder = encoder
        self.marks = marks
    }

    func tenant(id: TenantID) -> Tenant? { state.tenants[id] }
    func tenant(slug: String) -> Tenant? { state.tenants.values.first { $0.slug == slug } }
    func tenants(afterSlug: String?, limit: Int) -> [Tenant] {
        Array(
            state.tenants.values.filter { tenant in afterSlug.map { tenant.slug > $0 } ?? true }
                .sorted { $0.slug < $1.slug }.prefix(max(0, limit)))
    }

    func user(tenant: TenantID, id: UserID) -> User? {
        guard let user = state.users[id], user.tenantID == tenant else { return nil }
        return user
    }
    func user(tenant: TenantID, email: String) -> User? {
        state.users.values.first { $0.tenantID == tenant && $0.email == email }
    }
    func users(tenant: TenantID, afterEmail: String?, limit: Int) -> [User] {
        Array(
            state.users.values.filter { user in user.tenantID == tenant && (afterEmail.map { user.email > $0 } ?? true) }
                .sorted { $0.email < $1.email }.prefix(max(0, limit)))
    }

    func session(tenant: TenantID, tokenHash: [UInt8]) -> Session? {
        state.sessions.values.first { $0.tenantID == tenant && $0.tokenHash == tokenHash }
    }
    func session(tenant: TenantID, id: SessionID) -> Session? {
        guard let session = state.sessions[id], session.tenantID == tenant else { return nil }
        return session
    }
    func sessions(tenant: TenantID, user: UserID) -> [Session] {
        state.sessions.values.filter { $0.tenantID == tenant && $0.userID == user && $0.revokedAt == nil }
            .sorted { ($0.createdAt, $0.id.rawValue) < ($1.createdAt, $1.id.rawValue) }
    }

    func passwordReset(tenant: TenantID, tokenHash: [UInt8]) -> PasswordResetToken? {
        guard let reset = state.resets[tokenHash], reset.tenantID == tenant else { return nil }
        return reset
    }

    func events(after sequence: Int64, limit: Int) -> [EventRecord] {
        Array(state.events.filter { $0.sequence > sequence }.prefix(max(0, limit)))
    }

    func securityLog(tenant: TenantID, user: UserID, beforeID: Int64?, limit: Int) -> [SecurityLogEntry] {
        Array(
            state.securityLog.filter { entry in
                entry.tenantID == tenant && entry.userID == user && (beforeID.map { entry.id < $0 } ?? true)
            }
            .sorted { $0.id > $1.id }.prefix(max(0, limit)))
    }

    func insert(_ tenant: Tenant) throws {
        guard self.tenant(slug: tenant.slug) == nil, state.tenants[tenant.id] == nil else { throw DomainError.slugTaken }
        state.tenants[tenant.id] = tenant
    }
    func update(_ tenant: Tenant) throws {
        guard let existing = state.tenants[tenant.id] else { return }
        if existing.slug != tenant.slug, self.tenant(slug: tenant.slug) != nil { throw DomainError.slugTaken }
        state.tenants[tenant.id] = tenant
        marks.tenant(tenant.id)
    }

    func insert(_ user: User) throws {
        guard self.user(tenant: user.tenantID, email: user.email) == nil, state.users[user.id] == nil else {
            throw DomainError.emailTaken
        }
        state.users[user.id] = user
    }
    func update(_ user: User) throws {
        guard let existing = state.users[user.id], existing.tenantID == user.tenantID else { return }
        if existing.email != user.email, self.user(tenant: user.tenantID, email: user.email) != nil {
            throw DomainError.emailTaken
        }
        state.users[user.id] = user
        if !existing.validatesLike(user) { marks.user(user.id) }
    }

    func insert(_ session: Session) { state.sessions[session.id] = session }

    func revokeSession(tenant: TenantID, id: SessionID, at: Timestamp, reason: String) -> Bool {
        guard var session = state.sessions[id], session.tenantID == tenant, session.revokedAt == nil else { return false }
        session.revokedAt = at
        session.revokeReason = reason
        state.sessions[id] = session
        marks.user(session.userID)
        return true
    }

    func revokeSessions(tenant: TenantID, user: UserID, except: SessionID?, at: Timestamp, reason: String) -> [SessionID] {
        var revoked: [SessionID] = []
        for (id, session) in state.sessions
        where session.tenantID == tenant && session.userID == user && session.revokedAt == nil && id != except {
            state.sessions[id]?.revokedAt = at
            state.sessions[id]?.revokeReason = reason
            revoked.append(id)
        }
        if !revoked.isEmpty { marks.user(user) }
        return revoked.sorted { $0.rawValue < $1.rawValue }
    }

    func touchSessions(_ touches: [SessionCache.Touch]) {
        for touch in touches {
            guard let session = state.sessions[touch.sessionID], session.tenantID == touch.tenantID,
                session.lastActiveAt < touch.at
            else { continue }
            state.sessions[touch.sessionID]?.lastActiveAt = touch.at
        }
    }

    func deleteEndedSessions(tenant: TenantID, endedBefore: Timestamp) -> Int {
        let ended = state.sessions.values.filter { session in
            session.tenantID == tenant && SessionLiveness.hasEnded(session, before: endedBefore)
        }
        for session in ended { state.sessions.removeValue(forKey: session.id) }
        return ended.count
    }

    func insert(_ reset: PasswordResetToken) { state.resets[reset.tokenHash] = reset }

    func consumePasswordReset(tenant: TenantID, tokenHash: [UInt8], at: Timestamp) -> PasswordResetToken? {
        guard var reset = state.resets[tokenHash], reset.tenantID == tenant, reset.usedAt == nil, at < reset.expiresAt
        else { return nil }
        reset.usedAt = at
        state.resets[tokenHash] = reset
        return reset
    }

    func discardPasswordResets(tenant: TenantID, user: UserID, at: Timestamp) {
        for (hash, reset) in state.resets where reset.tenantID == tenant && reset.userID == user && reset.usedAt == nil {
            state.resets[hash]?.usedAt = at
        }
    }

    func append(_ event: DomainEvent, tenant: TenantID, at: Timestamp) {
        state.events.append(
            EventRecord(
                sequence: state.nextSequence, tenantID: tenant, type: event.type, subject: event.subject,
                payload: encoder.encode(event), createdAt: at))
        state.nextSequence += 1
    }

    func append(_ entry: SecurityLogEntry) {
        var entry = entry
        entry.id = state.nextLogID
        state.nextLogID += 1
        state.securityLog.append(entry)
    }
}

extension MemoryTransaction {
    func unknownEmailLockout(tenant: TenantID, email: String) -> Lockout? {
        state.unknownEmails[UnknownEmailKey(tenant: tenant, email: email)]?.lockout
    }

    func setUnknownEmailLockout(tenant: TenantID, email: String, _ lockout: Lockout, at: Timestamp, capacity: Int) {
        guard state.tenants[tenant] != nil else { return }
        let key = UnknownEmailKey(tenant: tenant, email: email)
        guard lockout != Lockout() else {
            state.unknownEmails.removeValue(forKey: key)
            return
        }
        if state.unknownEmails[key] == nil, state.unknownEmails.count >= max(1, capacity),
            let oldest = state.unknownEmails.min(by: { ($0.value.updatedAt, $0.key.email) < ($1.value.updatedAt, $1.key.email) })
        {
            state.unknownEmails.removeValue(forKey: oldest.key)
        }
        state.unknownEmails[key] = (lockout, at)
    }
}

/// An email with no account, in a tenant (the unknown-email lockout's key).
struct UnknownEmailKey: Hashable, Sendable {
    let tenant: TenantID
    let email: String
}
