import Foundation
import Synchronization

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
    /// Store reads of the miss path in flight (single-flight).
    private let flights = Mutex(Flights())

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
        switch lookup(tenant: tenant, hash: hash, now: now) {
        case .hit(let validated):
            return (validated, tenant)
        case .invalid:
            throw DomainError.sessionInvalid
        case .miss(let epoch):
            let validated = try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<ValidatedSession, any Error>) in
                load(tenant: tenant, hash: hash, epoch: epoch, now: now) { continuation.resume(with: $0) }
            }
            return (validated, tenant)
        }
    }

    /// Validates a token like ``validate(tenantReference:token:)`` but
    /// without a task: `completion` runs at once for a cached answer, or on
    /// the store's thread once the store read ends (SQLite: a reader thread;
    /// nothing in between). The transport answers its Validate misses with
    /// it. `completion` must be quick and must not block. A tenant not yet
    /// in the directory is resolved by the async path, in a task.
    public func validate(
        tenantReference: String, token: String,
        completion: @escaping @Sendable (Result<(ValidatedSession, Tenant), any Error>) -> Void
    ) {
        let tenant: Tenant
        do {
            guard let cached = try cachedTenant(reference: tenantReference) else {
                Task {
                    do {
                        completion(.success(try await validate(tenantReference: tenantReference, token: token)))
                    } catch {
                        completion(.failure(error))
                    }
                }
                return
            }
            tenant = cached
        } catch {
            completion(.failure(error))
            return
        }
        guard Self.plausibleToken(token) else { return completion(.failure(DomainError.sessionInvalid)) }
        let hash = OpaqueToken.hash(token)
        let now = clock.now()
        switch lookup(tenant: tenant, hash: hash, now: now) {
        case .hit(let validated):
            completion(.success((validated, tenant)))
        case .invalid:
            completion(.failure(DomainError.sessionInvalid))
        case .miss(let epoch):
            load(tenant: tenant, hash: hash, epoch: epoch, now: now) { result in
                completion(result.map { ($0, tenant) })
            }
        }
    }

    /// The cache's answer; a fenced instance skips the cache (it may miss a
    /// revocation made elsewhere) and answers from the store.
    private func lookup(tenant: Tenant, hash: [UInt8], now: Timestamp) -> SessionCache.Lookup {
        cachesTrusted
            ? cache.validate(tenant: tenant.id, tenantStatus: tenant.status, tokenHash: hash, now: now)
            : .miss(epoch: cache.epoch)
    }

    // MARK: Miss path (single-flight)

    /// Loads after a cache miss, one store read per token at a time: a miss
    /// that finds a read of the same token and tenant in flight, started
    /// under the same cache epoch, waits for that read's answer instead of
    /// reading again (a cold cache under load does not stampede the store).
    ///
    /// Revocation: every committed revoke bumps the epoch before it
    /// returns. A Validate that starts after that sees the new epoch, so it
    /// never joins a read that began before the revoke; it starts its own
    /// (which sees the commit). A read begun before the revoke may still
    /// answer the calls that joined it, all of which started before the
    /// revoke returned, and its insert is dropped by the epoch guard. A
    /// fenced instance does not share reads (its epoch may lag a revoke
    /// made elsewhere). Each waiter judges liveness with its own clock
    /// reading; the leader's error reaches every waiter.
    private func load(
        tenant: Tenant, hash: [UInt8], epoch: UInt64, now: Timestamp,
        completion: @escaping @Sendable (Result<ValidatedSession, any Error>) -> Void
    ) {
        let waiter: Waiter = { [self] loaded in
            completion(loaded.flatMap { self.answer($0, tenant: tenant, now: now) })
        }
        let key = FlightKey(tenant: tenant.id, hash: hash)
        let shared = cachesTrusted
        let flight: UInt64? = flights.withLock { state in
            if shared, let current = state.current[key], state.flights[current]?.epoch == epoch {
                state.flights[current]?.waiters.append(waiter)
                state.joined += 1
                return nil
            }
            state.next &+= 1
            let id = state.next
            state.flights[id] = Flight(epoch: epoch, waiters: [waiter])
            if shared { state.current[key] = id }
            state.loads += 1
            return id
        }
        guard let flight else { return }
        let tenantID = tenant.id
        store.read({ reader in try reader.sessionForValidate(tenant: tenantID, tokenHash: hash) }) { [self] result in
            // Cache first, then let go of the flight: a miss in between
            // finds one or the other.
            if cache.capacity > 0, case .success(let facts?) = result,
                case .success(let validated) = answer(facts, tenant: tenant, now: now)
            {
                cache.insert(validated, loadedAt: epoch)
            }
            let waiters = flights.withLock { state -> [Waiter] in
                if state.current[key] == flight { state.current.removeValue(forKey: key) }
                return state.flights.removeValue(forKey: flight)?.waiters ?? []
            }
            for waiter in waiters { waiter(result) }
        }
    }

    /// One waiter's answer from what the store read: the liveness verdict
    /// at its own `now`, with the activity not yet flushed; a live session
    /// records this call as activity.
    private func answer(_ facts: SessionWithUserFacts?, tenant: Tenant, now: Timestamp) -> Result<
        ValidatedSession, any Error
    > {
        guard let facts else { return .failure(DomainError.sessionInvalid) }
        let pending = cache.pendingLastActive(facts.session.id)
        let verdict = SessionLiveness.verdict(
            session: facts.session, lastActive: pending, userStatus: facts.userStatus, tenant: tenant.id,
            tenantStatus: tenant.status, at: now)
        guard verdict == .live else { return .failure(DomainError.sessionInvalid) }
        var validated = ValidatedSession(
            session: facts.session, email: facts.email, role: facts.role, twoFactorEnabled: facts.twoFactorEnabled,
            userStatus: facts.userStatus)
        validated.session.lastActiveAt = max(validated.session.lastActiveAt, pending ?? now, now)
        cache.touch(tenant: tenant.id, session: validated.session.id, at: now)
        return .success(validated)
    }

    /// Store reads the miss path started, and misses that joined a read in
    /// flight instead (for metrics and tests).
    public var loadStatistics: (loads: UInt64, joined: UInt64) {
        flights.withLock { ($0.loads, $0.joined) }
    }

    /// A miss waiting for a store read's answer.
    private typealias Waiter = @Sendable (Result<SessionWithUserFacts?, any Error>) -> Void

    /// What a flight is keyed by: the tenant the read is scoped to and the
    /// token hash.
    private struct FlightKey: Hashable {
        let tenant: TenantID
        let hash: [UInt8]
    }

    /// A store read in flight and the misses waiting for it.
    private struct Flight {
        let epoch: UInt64
        var waiters: [Waiter]
    }

    private struct Flights {
        /// The flight a miss of this key may join (the newest one).
        var current: [FlightKey: UInt64] = [:]
        /// Every flight in flight, joinable or not, by id.
        var flights: [UInt64: Flight] = [:]
        var next: UInt64 = 0
        var loads: UInt64 = 0
        var joined: UInt64 = 0
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
