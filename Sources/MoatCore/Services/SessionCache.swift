import Synchronization

/// What Validate answers from: a live session and the facts about its user
/// that Validate reports.
public struct ValidatedSession: Sendable, Equatable {
    public var session: Session
    public var email: String
    public var role: TenantRole
    public var twoFactorEnabled: Bool
    /// The user's status when loaded (only active users' sessions are
    /// cached; a status change marks the user and drops them).
    public var userStatus: UserStatus

    public init(
        session: Session, email: String, role: TenantRole, twoFactorEnabled: Bool, userStatus: UserStatus = .active
    ) {
        self.session = session
        self.email = email
        self.role = role
        self.twoFactorEnabled = twoFactorEnabled
        self.userStatus = userStatus
    }
}

/// Live sessions by token hash, bounded, with last-active times kept in
/// memory until a background flush writes them.
///
/// Correctness rule: a revocation is visible to every Validate that starts
/// after the revoking call returned. The cache is owned by the
/// ``SessionAuthority``, which calls ``invalidate(user:)`` with the
/// ``ValidityMarks`` of every committed write, before that write returns.
/// A load that raced with such an invalidation is not cached: each
/// invalidation bumps an epoch, and ``insert(_:loadedAt:)`` drops entries
/// loaded under an older epoch. Liveness is judged by ``SessionLiveness``.
public final class SessionCache: Sendable {
    /// A token hash as a dictionary key (the first 16 bytes of the SHA-256
    /// are plenty to tell live sessions apart; a full compare follows).
    struct Key: Hashable {
        let high: UInt64
        let low: UInt64

        init(_ hash: [UInt8]) {
            var high: UInt64 = 0
            var low: UInt64 = 0
            for (index, byte) in hash.prefix(16).enumerated() {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            }
            self.high = high
            self.low = low
        }
    }

    /// A last-active time waiting to be written.
    public struct Touch: Sendable, Equatable {
        public var tenantID: TenantID
        public var sessionID: SessionID
        public var at: Timestamp
    }

    private struct State {
        var entries: [Key: ValidatedSession] = [:]
        var byUser: [UserID: Set<Key>] = [:]
        var epoch: UInt64 = 0
        var pending: [SessionID: Touch] = [:]
        var hits: UInt64 = 0
        var misses: UInt64 = 0
        var evictions: UInt64 = 0

        /// Drops one entry and, with its user's last one, the user's index.
        mutating func remove(_ key: Key, of user: UserID) {
            entries.removeValue(forKey: key)
            byUser[user]?.remove(key)
            if byUser[user]?.isEmpty == true { byUser.removeValue(forKey: user) }
        }
    }

    private let state = Mutex(State())
    /// The most entries kept.
    public let capacity: Int
    /// Activity closer together than this is not written again.
    public let touchGranularityMilliseconds: Int64

    /// Creates a cache.
    public init(capacity: Int = 100_000, touchGranularityMilliseconds: Int64 = 1000) {
        self.capacity = max(0, capacity)
        self.touchGranularityMilliseconds = max(0, touchGranularityMilliseconds)
    }

    /// The outcome of a lookup.
    public enum Lookup: Sendable, Equatable {
        /// A cached session; the answer is final.
        case hit(ValidatedSession)
        /// A cached session that is not valid for this tenant or time.
        case invalid
        /// Not cached: load it, then ``insert(_:loadedAt:)`` with this epoch.
        case miss(epoch: UInt64)
    }

    /// Looks a token up and, on a hit, records the activity.
    ///
    /// - Parameter tenantStatus: the status of the tenant the call names,
    ///   as the tenant directory has it.
    public func validate(
        tenant: TenantID, tenantStatus: TenantStatus = .active, tokenHash: [UInt8], now: Timestamp
    ) -> Lookup {
        let key = Key(tokenHash)
        return state.withLock { state in
            guard var entry = state.entries[key], entry.session.tokenHash == tokenHash else {
                state.misses += 1
                return .miss(epoch: state.epoch)
            }
            state.hits += 1
            switch SessionLiveness.verdict(
                session: entry.session, userStatus: entry.userStatus, tenant: tenant, tenantStatus: tenantStatus,
                at: now)
            {
            case .live:
                break
            case .otherTenant:
                // Another tenant's token says nothing about its own validity.
                return .invalid
            default:
                state.remove(key, of: entry.session.userID)
                return .invalid
            }
            if now.milliseconds - entry.session.lastActiveAt.milliseconds >= touchGranularityMilliseconds {
                entry.session.lastActiveAt = now
                state.entries[key] = entry
                state.pending[entry.session.id] = Touch(tenantID: tenant, sessionID: entry.session.id, at: now)
            }
            return .hit(entry)
        }
    }

    /// The current invalidation epoch, for a load that bypasses
    /// ``validate(tenant:tenantStatus:tokenHash:now:)`` (a fenced instance
    /// reading the store) and then ``insert(_:loadedAt:)``s what it read.
    public var epoch: UInt64 { state.withLock { $0.epoch } }

    /// Caches a session loaded from the store, unless an invalidation
    /// happened since the load began (its epoch is older).
    public func insert(_ validated: ValidatedSession, loadedAt epoch: UInt64) {
        guard capacity > 0 else { return }
        let key = Key(validated.session.tokenHash)
        state.withLock { state in
            guard state.epoch == epoch else { return }
            var validated = validated
            if let pending = state.pending[validated.session.id], pending.at > validated.session.lastActiveAt {
                validated.session.lastActiveAt = pending.at
            }
            if state.entries[key] == nil, state.entries.count >= capacity {
                // Bounded: forget an arbitrary entry; it reloads on its next use.
                if let victim = state.entries.first {
                    state.remove(victim.key, of: victim.value.session.userID)
                    state.evictions += 1
                }
            }
            state.entries[key] = validated
            state.byUser[validated.session.userID, default: []].insert(key)
        }
    }

    /// Records activity of a session validated from the store.
    public func touch(tenant: TenantID, session: SessionID, at now: Timestamp) {
        state.withLock { state in
            if let existing = state.pending[session], existing.at >= now { return }
            state.pending[session] = Touch(tenantID: tenant, sessionID: session, at: now)
        }
    }

    /// Drops every cached session of a user (the authority applies a
    /// write's marks with it).
    public func invalidate(user: UserID) {
        state.withLock { state in
            state.epoch &+= 1
            for key in state.byUser.removeValue(forKey: user) ?? [] { state.entries.removeValue(forKey: key) }
        }
    }

    /// Drops everything (a tenant-wide change).
    public func invalidateAll() {
        state.withLock { state in
            state.epoch &+= 1
            state.entries.removeAll()
            state.byUser.removeAll()
        }
    }

    /// The not-yet-written last-active time of a session, if any.
    public func pendingLastActive(_ session: SessionID) -> Timestamp? {
        state.withLock { $0.pending[session]?.at }
    }

    /// Takes the last-active times waiting to be written.
    public func takePendingTouches() -> [Touch] {
        state.withLock { state in
            defer { state.pending.removeAll(keepingCapacity: true) }
            return Array(state.pending.values)
        }
    }

    /// Puts back touches whose write failed (newer ones win).
    public func restore(_ touches: [Touch]) {
        state.withLock { state in
            for touch in touches where (state.pending[touch.sessionID]?.at ?? Timestamp(milliseconds: .min)) < touch.at {
                state.pending[touch.sessionID] = touch
            }
        }
    }

    /// Entries, hits and misses (for metrics and tests).
    public var statistics: (entries: Int, hits: UInt64, misses: UInt64) {
        state.withLock { ($0.entries.count, $0.hits, $0.misses) }
    }

    /// Entries forgotten to make room (the cache was full), since start.
    public var evictions: UInt64 { state.withLock { $0.evictions } }
}
