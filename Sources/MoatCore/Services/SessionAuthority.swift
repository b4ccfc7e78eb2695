import Foundation

/// The one owner of session validity: the session cache, the tenant
/// directory and the liveness rule (``SessionLiveness``). Both Validate
/// paths (``validateCached(tenantReference:token:)`` on the transport's
/// thread, ``validate(tenantReference:token:)`` through the store) and
/// ``authenticate(tenant:token:)`` answer here.
///
/// Nothing outside calls `invalidate`: the authority subscribes to the
/// store's ``ValidityMarkRelay``, and every committed write that marked
/// something reaches ``apply(_:)`` before that write returns. So "a
/// revocation is visible to every Validate that starts after the revoking
/// call returned" holds for any write path, present or future, as long as
/// the store's writer marks (which `ValidityMarkTests` enforces).
public final class SessionAuthority: ValidityMarkSink {
    /// Live sessions by token hash.
    public let cache: SessionCache
    /// Tenants by id and slug, so the hot path resolves its tenant without
    /// the store.
    let tenants = TenantDirectory()
    private let store: any AccountStore
    private let clock: any WallClock
    /// The store's fence when other processes write it too (PostgreSQL with
    /// several moatd): while it is not current, the caches are not trusted
    /// and every answer comes from the store. Nil (no cost) on SQLite.
    private let fence: CacheFence?

    /// Creates the authority over a store and subscribes it to the store's
    /// validity marks.
    public init(store: any AccountStore, clock: any WallClock, cache: SessionCache = SessionCache()) {
        self.store = store
        self.clock = clock
        self.cache = cache
        self.fence = store.validityMarks.fence
        store.validityMarks.subscribe(self)
    }

    // MARK: Invalidation

    /// Drops what a committed write marked: the users' cached sessions and
    /// the tenants' cached rows (each bumps its cache's epoch, so a load
    /// that raced with the write is not kept).
    public func apply(_ marks: ValidityMarks) {
        if marks.all {
            cache.invalidateAll()
            tenants.invalidateAll()
            return
        }
        for user in marks.users { cache.invalidate(user: user) }
        for tenant in marks.tenants { tenants.invalidate(tenant) }
    }

    /// Whether the caches may answer: always on a store only this process
    /// writes; on a shared one, only while this instance has confirmed,
    /// within the fencing bound, that it applied every committed mark.
    @inline(__always)
    var cachesTrusted: Bool { fence?.isCurrent ?? true }

    // MARK: Tenants

    /// The tenant a request names, by id or slug; NOT_FOUND if none.
    public func tenant(reference: String) async throws -> Tenant {
        if let cached = try cachedTenant(reference: reference) { return cached }
        let reference = reference.trimmingCharacters(in: .whitespaces).lowercased()
        let epoch = tenants.epoch
        let tenant = try await store.read { reader in
            if let id = TenantID(reference) { return try reader.tenant(id: id) }
            return try reader.tenant(slug: reference)
        }
        guard let tenant else { throw DomainError.tenantNotFound }
        tenants.insert(tenant, loadedAt: epoch)
        return tenant
    }

    /// The tenant from the directory, without the store; nil if not cached
    /// or if the caches are not trusted now (a fenced instance).
    public func cachedTenant(reference: String) throws(DomainError) -> Tenant? {
        guard !reference.isEmpty, reference.contains(where: { !$0.isWhitespace }) else { throw DomainError.tenantRequired }
        guard reference.utf8.count <= 128 else { throw DomainError.tenantNotFound }
        guard cachesTrusted else { return nil }
        return tenants.lookup(reference)
    }

    // MARK: Validate

    /// Validates a token from the caches alone, without suspending.
    ///
    /// - Returns: the answer, or nil when the store must be asked (use
    ///   ``validate(tenantReference:token:)``).
    public func validateCached(tenantReference: String, token: String) -> Result<(ValidatedSession, Tenant), DomainError>? {
        let tenant: Tenant
        do {
            guard let cached = try cachedTenant(reference: tenantReference) else { return nil }
            tenant = cached
        } catch {
            return .failure(error)
        }
        guard Self.plausibleToken(token) else { return .failure(.sessionInvalid) }
        switch cache.validate(
            tenant: tenant.id, tenantStatus: tenant.status, tokenHash: OpaqueToken.hash(token), now: clock.now())
        {
        case .hit(let validated): return .success((validated, tenant))
        case .invalid: return .failure(.sessionInvalid)
        case .miss: return nil
        }
    }

    /// Validates a token: the cached answer if there is one, else the store.
    /// Unknown, revoked, expired, other-tenant, a user who is not active or
    /// a tenant pending deletion: UNAUTHENTICATED (`SESSION_INVALID`).
    /// Records the activity.
    public func validate(tenantReference: String, token: String) async throws -> (ValidatedSession, Tenant) {
        let tenant = try await self.tenant(reference: tenantReference)
        guard Self.plausibleToken(token) else { throw DomainError.sessionInvalid }
        let hash = OpaqueToken.hash(token)
        let now = clock.now()
        // A fenced instance skips the cache (it may miss a revocation made
        // elsewhere) and answers from the store, caching what it read.
        let lookup: SessionCache.Lookup =
            cachesTrusted
            ? cache.validate(tenant: tenant.id, tenantStatus: tenant.status, tokenHash: hash, now: now)
            : .miss(epoch: cache.epoch)
        switch lookup {
        case .hit(let validated):
            return (validated, tenant)
        case .invalid:
            throw DomainError.sessionInvalid
        case .miss(let epoch):
            let loaded = try await store.read { reader -> ValidatedSession? in
                guard let session = try reader.session(tenant: tenant.id, tokenHash: hash),
                    let user = try reader.user(tenant: tenant.id, id: session.userID)
                else { return nil }
                return ValidatedSession(
                    session: session, email: user.email, role: user.role, twoFactorEnabled: user.twoFactorEnabled,
                    userStatus: user.status)
            }
            guard var validated = loaded else { throw DomainError.sessionInvalid }
            let verdict = SessionLiveness.verdict(
                session: validated.session, lastActive: cache.pendingLastActive(validated.session.id),
                userStatus: validated.userStatus, tenant: tenant.id, tenantStatus: tenant.status, at: now)
            guard verdict == .live else { throw DomainError.sessionInvalid }
            validated.session.lastActiveAt = max(
                validated.session.lastActiveAt, cache.pendingLastActive(validated.session.id) ?? now, now)
            cache.touch(tenant: tenant.id, session: validated.session.id, at: now)
            cache.insert(validated, loadedAt: epoch)
            return (validated, tenant)
        }
    }

    // MARK: Authenticate

    /// The live session and active user behind a token, in a tenant.
    /// Anything wrong (unknown, revoked, expired, other tenant, disabled
    /// user, tenant pending deletion) is the same UNAUTHENTICATED
    /// `SESSION_INVALID`. Judges idle expiry with the activity not yet
    /// flushed, exactly as Validate does, and records this call as
    /// activity. Always reads the store (these calls act on the account).
    public func authenticate(tenant: TenantID, token: String) async throws -> (Session, User) {
        guard Self.plausibleToken(token) else { throw DomainError.sessionInvalid }
        let hash = OpaqueToken.hash(token)
        let found = try await store.read { reader -> (Session, User, TenantStatus)? in
            guard let session = try reader.session(tenant: tenant, tokenHash: hash),
                let user = try reader.user(tenant: tenant, id: session.userID),
                let stored = try reader.tenant(id: tenant)
            else { return nil }
            return (session, user, stored.status)
        }
        let now = clock.now()
        guard let (foundSession, user, tenantStatus) = found else { throw DomainError.sessionInvalid }
        var session = foundSession
        let pending = cache.pendingLastActive(session.id)
        let verdict = SessionLiveness.verdict(
            session: session, lastActive: pending, userStatus: user.status, tenant: tenant, tenantStatus: tenantStatus,
            at: now)
        guard verdict == .live else { throw DomainError.sessionInvalid }
        cache.touch(tenant: tenant, session: session.id, at: now)
        session.lastActiveAt = max(session.lastActiveAt, pending ?? session.lastActiveAt, now)
        return (session, user)
    }

    /// Tokens are 43 base64url characters; anything far off is not one.
    static func plausibleToken(_ token: String) -> Bool {
        !token.isEmpty && token.utf8.count <= 256
    }
}
