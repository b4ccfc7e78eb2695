import Synchronization

/// What Validate answers from: a live session and the facts about its user
/// that Validate reports.
///
/// Loaded from the store it is the whole session. Answered from the
/// ``SessionCache`` it is rebuilt from what the cache keeps, which is what
/// Validate needs and no more: the session's display fields (user agent,
/// IP, location, device name) are empty and `revokeReason` is nil (a hit is
/// a live, unrevoked session); everything else is the stored value.
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

    /// This answer as a cache hit gives it: without the session's display
    /// fields and revocation reason (a hit is a live session).
    public var withoutDisplayFields: ValidatedSession {
        var copy = self
        copy.session.client = ClientDetails()
        copy.session.revokeReason = nil
        return copy
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
///
/// Memory: an entry is a fixed-size ``Entry`` (88 bytes: the whole token
/// hash, the session id as 128 bits, four times, three small fields) in one
/// contiguous slab, found through a `[Bits128: UInt32]` index by the hash's
/// first 16 bytes. What the sessions of one user share (user and tenant id,
/// email, role, status, 2FA) is kept once, in a per-user ``UserRecord``
/// that goes with the user's last session. Only canonical identifiers (26
/// base32 characters from 16 bytes, what `PrefixedID.random()` makes) and
/// 32-byte token hashes are cached; anything else is simply not cached and
/// always answered from the store.
///
/// Concurrency: a cache of ``shardedFrom`` entries or more is 16 shards by
/// the token hash's bits, each with its own lock, slab, index, per-user
/// records and eviction hand, and a share of the capacity. The two event
/// loops and the store's readers then rarely meet on one lock. A user's
/// sessions spread over shards, so invalidating a user visits every shard,
/// and a load refreshes the user's records in every shard. The epoch is one
/// atomic counter for all shards: an invalidation bumps it before it drops
/// anything, and an insert checks it under its shard's lock.
public final class SessionCache: Sendable {
    /// 128 bits: a token hash's first or last 16 bytes, or an identifier.
    struct Bits128: Hashable {
        var high: UInt64
        var low: UInt64

    }

    /// A token hash split into the index key and the rest, compared in full
    /// on every lookup (a key collision never answers for another token).
    struct SplitHash {
        let key: Bits128
        let tail: Bits128

        init?(_ hash: [UInt8]) {
            guard hash.count == 32 else { return nil }
            let words = hash.withUnsafeBytes { raw in
                (
                    raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                    raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                    raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                    raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
                )
            }
            key = Bits128(high: words.0, low: words.1)
            tail = Bits128(high: words.2, low: words.3)
        }
    }

    /// A last-active time waiting to be written.
    public struct Touch: Sendable, Equatable {
        public var tenantID: TenantID
        public var sessionID: SessionID
        public var at: Timestamp
    }

    /// One cached session: what Validate answers and what liveness needs.
    struct Entry {
        static let occupied: UInt8 = 1
        static let secondFactor: UInt8 = 2
        static let revoked: UInt8 = 4
        static let none = UInt32.max

        var key: Bits128
        var tail: Bits128
        var session: Bits128
        var createdAt: Int64
        var lastActiveAt: Int64
        var absoluteExpiresAt: Int64
        var idleTimeoutSeconds: Int32
        /// The slot of the user's record.
        var user: UInt32
        /// The user's next session (or the next free slot).
        var next: UInt32
        var flags: UInt8
    }

    /// What the sessions of one user share, kept once.
    struct UserRecord {
        var user: Bits128
        var tenant: Bits128
        var email: String
        /// The user's first session (or the next free record).
        var head: UInt32
        /// Cached sessions of the user; 0 for a free record.
        var count: UInt32
        var role: TenantRole
        var status: UserStatus
        var twoFactorEnabled: Bool
    }

    /// A pending last-active time of a session with canonical ids.
    struct PendingTouch {
        var tenant: Bits128
        var at: Int64
    }

    struct State {
        var index: [Bits128: UInt32] = [:]
        var entries: ContiguousArray<Entry> = []
        var freeEntry = Entry.none
        var userIndex: [Bits128: UInt32] = [:]
        var users: ContiguousArray<UserRecord> = []
        var freeUser = Entry.none
        var evictionCursor = 0
        var hits: UInt64 = 0
        var misses: UInt64 = 0
        var evictions: UInt64 = 0

        var count: Int { index.count }

        /// Drops one entry and, with its user's last one, the user's record.
        mutating func remove(slot: UInt32) {
            let entry = entries[Int(slot)]
            index.removeValue(forKey: entry.key)
            let userSlot = Int(entry.user)
            // Unlink from the user's list (a user has few sessions).
            if users[userSlot].head == slot {
                users[userSlot].head = entry.next
            } else {
                var cursor = users[userSlot].head
                while cursor != Entry.none {
                    let next = entries[Int(cursor)].next
                    if next == slot {
                        entries[Int(cursor)].next = entry.next
                        break
                    }
                    cursor = next
                }
            }
            users[userSlot].count -= 1
            if users[userSlot].count == 0 { freeUserRecord(UInt32(userSlot)) }
            freeEntrySlot(slot)
        }

        /// Drops every entry of a user and the user's record.
        mutating func removeUser(slot userSlot: UInt32) {
            var cursor = users[Int(userSlot)].head
            while cursor != Entry.none {
                let next = entries[Int(cursor)].next
                index.removeValue(forKey: entries[Int(cursor)].key)
                freeEntrySlot(cursor)
                cursor = next
            }
            freeUserRecord(userSlot)
        }

        private mutating func freeEntrySlot(_ slot: UInt32) {
            entries[Int(slot)].flags = 0
            entries[Int(slot)].next = freeEntry
            freeEntry = slot
        }

        private mutating func freeUserRecord(_ slot: UInt32) {
            userIndex.removeValue(forKey: users[Int(slot)].user)
            users[Int(slot)].email = ""
            users[Int(slot)].count = 0
            users[Int(slot)].head = freeUser
            freeUser = slot
        }

        /// Forgets one entry to make room: the next occupied slot after the
        /// last victim (a clock hand over the slab).
        mutating func evictOne() {
            guard !entries.isEmpty else { return }
            for _ in 0..<entries.count {
                if evictionCursor >= entries.count { evictionCursor = 0 }
                let slot = evictionCursor
                evictionCursor += 1
                if entries[slot].flags & Entry.occupied != 0 {
                    remove(slot: UInt32(slot))
                    evictions += 1
                    return
                }
            }
        }

        /// Refreshes the record of a user from a load, if there is one: a
        /// load under the current epoch is the user as now stored, and every
        /// session of the user answers with it. The same user id in another
        /// tenant: trust neither, the record and its sessions go.
        mutating func refreshUser(
            user: Bits128, tenant: Bits128, email: String, role: TenantRole, status: UserStatus, twoFactorEnabled: Bool
        ) -> UInt32? {
            guard let slot = userIndex[user] else { return nil }
            guard users[Int(slot)].tenant == tenant else {
                removeUser(slot: slot)
                return nil
            }
            users[Int(slot)].email = email
            users[Int(slot)].role = role
            users[Int(slot)].status = status
            users[Int(slot)].twoFactorEnabled = twoFactorEnabled
            return slot
        }

        /// The record of a user, made or refreshed from a load.
        mutating func userSlot(
            user: Bits128, tenant: Bits128, email: String, role: TenantRole, status: UserStatus, twoFactorEnabled: Bool
        ) -> UInt32 {
            if let slot = refreshUser(
                user: user, tenant: tenant, email: email, role: role, status: status, twoFactorEnabled: twoFactorEnabled)
            {
                return slot
            }
            let record = UserRecord(
                user: user, tenant: tenant, email: email, head: Entry.none, count: 0, role: role, status: status,
                twoFactorEnabled: twoFactorEnabled)
            let slot: UInt32
            if freeUser != Entry.none {
                slot = freeUser
                freeUser = users[Int(slot)].head
                users[Int(slot)] = record
            } else {
                slot = UInt32(users.count)
                users.append(record)
            }
            userIndex[user] = slot
            return slot
        }

        /// Stores an entry in a free slot, linked into its user's list.
        mutating func add(_ entry: Entry) {
            var entry = entry
            entry.next = users[Int(entry.user)].head
            let slot: UInt32
            if freeEntry != Entry.none {
                slot = freeEntry
                freeEntry = entries[Int(slot)].next
                entries[Int(slot)] = entry
            } else {
                slot = UInt32(entries.count)
                entries.append(entry)
            }
            users[Int(entry.user)].head = slot
            users[Int(entry.user)].count += 1
            index[entry.key] = slot
        }

    }

    /// Last-active times waiting to be written, of the sessions whose ids
    /// fall in one pending shard.
    struct Pending {
        var packed: [Bits128: PendingTouch] = [:]
        /// Touches of sessions whose ids are not canonical (never cached).
        var other: [SessionID: Touch] = [:]

        func at(_ session: SessionID, packed packedSession: Bits128?) -> Timestamp? {
            if let packedSession, let touch = packed[packedSession] { return Timestamp(milliseconds: touch.at) }
            return other[session]?.at
        }

        mutating func record(tenant: TenantID, session: SessionID, packed packedSession: Bits128?, at now: Timestamp) {
            if let packedSession, let packedTenant = CompactID.pack(tenant) {
                if let existing = packed[packedSession], existing.at >= now.milliseconds { return }
                packed[packedSession] = PendingTouch(tenant: packedTenant, at: now.milliseconds)
            } else {
                if let existing = other[session], existing.at >= now { return }
                other[session] = Touch(tenantID: tenant, sessionID: session, at: now)
            }
        }
    }

    /// One lock's share of the cache. The padding keeps two shards' locks
    /// off one cache line.
    final class Shard: Sendable {
        private let before: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        let state = Mutex(State())
        private let after: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    }

    /// One lock's share of the pending last-active times.
    final class PendingShard: Sendable {
        private let before: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        let state = Mutex(Pending())
        private let after: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    }

    /// Sessions by their token hash's first bits: each shard has its own
    /// lock, slab, index, user records and eviction hand, so the two event
    /// loops and the store's readers rarely wait for one another.
    private let shards: [Shard]
    /// Pending last-active times by the session id's low bits. A lock here
    /// is only ever taken inside a session shard's lock or alone, never the
    /// other way round.
    private let pendingShards: [PendingShard]
    /// `shards.count - 1` (a power of two minus one).
    private let mask: UInt64
    /// The most entries one shard keeps.
    private let shardCapacity: Int
    /// Bumped by every invalidation before it drops anything; a load that
    /// began under an older value is not cached.
    private let invalidations = Atomic<UInt64>(0)
    /// The most entries kept (each shard keeps its share, rounded up).
    public let capacity: Int
    /// Activity closer together than this is not written again.
    public let touchGranularityMilliseconds: Int64

    /// Shards of a cache of at least this many entries; a smaller cache
    /// keeps one (its eviction order is then exact, and tests rely on it).
    /// A cache of capacity 0 keeps nothing, so it has no order to keep: it
    /// is sharded too (its lookups and pending times still take locks).
    static let shardedFrom = 16_384
    static let shardCount = 16

    /// Creates a cache.
    public init(capacity: Int = 100_000, touchGranularityMilliseconds: Int64 = 1000) {
        // Slots are 32-bit indices.
        self.capacity = min(max(0, capacity), Int(UInt32.max - 1))
        self.touchGranularityMilliseconds = max(0, touchGranularityMilliseconds)
        let count = self.capacity >= Self.shardedFrom || self.capacity == 0 ? Self.shardCount : 1
        shards = (0..<count).map { _ in Shard() }
        pendingShards = (0..<count).map { _ in PendingShard() }
        mask = UInt64(count - 1)
        shardCapacity = (self.capacity + count - 1) / count
    }

    private func shard(_ split: SplitHash) -> Shard { shards[Int(truncatingIfNeeded: split.key.low & mask)] }

    private func pendingShard(_ packedSession: Bits128?) -> PendingShard {
        guard let packedSession else { return pendingShards[0] }
        return pendingShards[Int(truncatingIfNeeded: packedSession.low & mask)]
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

    /// What a hit copies out of the lock.
    private struct Answer {
        var session: Session
        var packedSession: Bits128
        var packedUser: Bits128
        var email: String
        var role: TenantRole
        var twoFactorEnabled: Bool
        var userStatus: UserStatus
    }

    private enum Outcome {
        case answer(Answer)
        case lookup(Lookup)
    }

    /// Looks a token up and, on a hit, records the activity.
    ///
    /// - Parameter tenantStatus: the status of the tenant the call names,
    ///   as the tenant directory has it.
    public func validate(
        tenant: TenantID, tenantStatus: TenantStatus = .active, tokenHash: [UInt8], now: Timestamp
    ) -> Lookup {
        guard let split = SplitHash(tokenHash) else {
            return shards[0].state.withLock { state in
                state.misses += 1
                return .miss(epoch: epoch)
            }
        }
        let askedTenant = CompactID.pack(tenant)
        let outcome: Outcome = shard(split).state.withLock { state in
            guard let slot = state.index[split.key], state.entries[Int(slot)].tail == split.tail else {
                state.misses += 1
                // Read after the lookup: a load that starts now sees every
                // write whose invalidation came before this value.
                return .lookup(.miss(epoch: epoch))
            }
            state.hits += 1
            let entry = state.entries[Int(slot)]
            let user = state.users[Int(entry.user)]
            // Another tenant's token says nothing about its own validity.
            guard let askedTenant, askedTenant == user.tenant else { return .lookup(.invalid) }
            // The ids are filled in outside the lock; the rule needs none.
            var session = Session(
                id: SessionID(unchecked: ""), tenantID: tenant, userID: UserID(unchecked: ""), tokenHash: tokenHash,
                client: ClientDetails(), createdAt: Timestamp(milliseconds: entry.createdAt),
                lastActiveAt: Timestamp(milliseconds: entry.lastActiveAt),
                absoluteExpiresAt: Timestamp(milliseconds: entry.absoluteExpiresAt),
                idleTimeoutSeconds: Int64(entry.idleTimeoutSeconds),
                secondFactorSatisfied: entry.flags & Entry.secondFactor != 0,
                revokedAt: entry.flags & Entry.revoked != 0 ? Timestamp(milliseconds: entry.createdAt) : nil)
            let verdict = SessionLiveness.verdict(
                session: session, userStatus: user.status, tenant: tenant, tenantStatus: tenantStatus, at: now)
            guard verdict == .live else {
                state.remove(slot: slot)
                return .lookup(.invalid)
            }
            if now.milliseconds - entry.lastActiveAt >= touchGranularityMilliseconds {
                state.entries[Int(slot)].lastActiveAt = now.milliseconds
                session.lastActiveAt = now
                pendingShard(entry.session).state.withLock {
                    $0.packed[entry.session] = PendingTouch(tenant: askedTenant, at: now.milliseconds)
                }
            }
            return .answer(
                Answer(
                    session: session, packedSession: entry.session, packedUser: user.user, email: user.email,
                    role: user.role, twoFactorEnabled: user.twoFactorEnabled, userStatus: user.status))
        }
        switch outcome {
        case .lookup(let lookup):
            return lookup
        case .answer(var answer):
            answer.session.id = CompactID.unpack(answer.packedSession)
            answer.session.userID = CompactID.unpack(answer.packedUser)
            return .hit(
                ValidatedSession(
                    session: answer.session, email: answer.email, role: answer.role,
                    twoFactorEnabled: answer.twoFactorEnabled, userStatus: answer.userStatus))
        }
    }

    /// The current invalidation epoch, for a load that bypasses
    /// ``validate(tenant:tenantStatus:tokenHash:now:)`` (a fenced instance
    /// reading the store) and then ``insert(_:loadedAt:)``s what it read.
    public var epoch: UInt64 { invalidations.load(ordering: .sequentiallyConsistent) }

    /// Caches a session loaded from the store, unless an invalidation
    /// happened since the load began (its epoch is older). The user's facts
    /// in it replace those cached for the user's other sessions (a load
    /// under the current epoch is the user as stored now).
    public func insert(_ validated: ValidatedSession, loadedAt epoch: UInt64) {
        guard capacity > 0 else { return }
        let session = validated.session
        guard let split = SplitHash(session.tokenHash), let packedSession = CompactID.pack(session.id),
            let packedUser = CompactID.pack(session.userID), let packedTenant = CompactID.pack(session.tenantID),
            let idle = Int32(exactly: session.idleTimeoutSeconds)
        else { return }
        var flags = Entry.occupied
        if session.secondFactorSatisfied { flags |= Entry.secondFactor }
        if session.revokedAt != nil { flags |= Entry.revoked }
        let pendingTimes = pendingShard(packedSession)
        let home = shard(split)
        let inserted = home.state.withLock { state -> Bool in
            // Checked under the shard's lock: an invalidation that bumps
            // after this check takes the lock after this insert and drops it.
            guard self.epoch == epoch else { return false }
            var lastActive = session.lastActiveAt.milliseconds
            if let pending = pendingTimes.state.withLock({ $0.packed[packedSession] }), pending.at > lastActive {
                lastActive = pending.at
            }
            if let existing = state.index[split.key] {
                state.remove(slot: existing)
            } else if state.count >= shardCapacity {
                // Bounded: forget another entry; it reloads on its next use.
                state.evictOne()
            }
            let user = state.userSlot(
                user: packedUser, tenant: packedTenant, email: validated.email, role: validated.role,
                status: validated.userStatus, twoFactorEnabled: validated.twoFactorEnabled)
            state.add(
                Entry(
                    key: split.key, tail: split.tail, session: packedSession, createdAt: session.createdAt.milliseconds,
                    lastActiveAt: lastActive, absoluteExpiresAt: session.absoluteExpiresAt.milliseconds,
                    idleTimeoutSeconds: idle, user: user, next: Entry.none, flags: flags))
            return true
        }
        // The user's sessions in other shards answer with the same facts
        // (one shard's lock at a time, after this one's: never two held).
        guard inserted, shards.count > 1 else { return }
        for shard in shards where shard !== home {
            shard.state.withLock { state in
                guard self.epoch == epoch else { return }
                _ = state.refreshUser(
                    user: packedUser, tenant: packedTenant, email: validated.email, role: validated.role,
                    status: validated.userStatus, twoFactorEnabled: validated.twoFactorEnabled)
            }
        }
    }

    /// Records activity of a session validated from the store.
    public func touch(tenant: TenantID, session: SessionID, at now: Timestamp) {
        let packed = CompactID.pack(session)
        pendingShard(packed).state.withLock { $0.record(tenant: tenant, session: session, packed: packed, at: now) }
    }

    /// Drops every cached session of a user (the authority applies a
    /// write's marks with it).
    public func invalidate(user: UserID) {
        let packed = CompactID.pack(user)
        invalidations.wrappingAdd(1, ordering: .sequentiallyConsistent)
        // A user's sessions may sit in every shard, each with its own record.
        guard let packed else { return }
        for shard in shards {
            shard.state.withLock { state in
                if let slot = state.userIndex[packed] { state.removeUser(slot: slot) }
            }
        }
    }

    /// Drops everything (a tenant-wide change).
    public func invalidateAll() {
        invalidations.wrappingAdd(1, ordering: .sequentiallyConsistent)
        for shard in shards {
            shard.state.withLock { state in
                state.index = [:]
                state.entries = []
                state.freeEntry = Entry.none
                state.userIndex = [:]
                state.users = []
                state.freeUser = Entry.none
                state.evictionCursor = 0
            }
        }
    }

    /// The not-yet-written last-active time of a session, if any.
    public func pendingLastActive(_ session: SessionID) -> Timestamp? {
        let packed = CompactID.pack(session)
        return pendingShard(packed).state.withLock { $0.at(session, packed: packed) }
    }

    /// Takes the last-active times waiting to be written.
    public func takePendingTouches() -> [Touch] {
        let taken = pendingShards.map { shard in
            shard.state.withLock { pending in
                // Swapped out whole, so the memory of a burst goes with it.
                defer { pending = Pending() }
                return pending
            }
        }
        var touches = taken.flatMap { $0.other.values }
        touches.reserveCapacity(taken.reduce(touches.count) { $0 + $1.packed.count })
        // One string per tenant, not per touch: a flush of a burst is
        // otherwise millions of short-lived allocations.
        var tenants: [Bits128: TenantID] = [:]
        for (session, touch) in taken.lazy.flatMap({ $0.packed }) {
            let tenant: TenantID
            if let known = tenants[touch.tenant] {
                tenant = known
            } else {
                tenant = CompactID.unpack(touch.tenant)
                tenants[touch.tenant] = tenant
            }
            touches.append(
                Touch(tenantID: tenant, sessionID: CompactID.unpack(session), at: Timestamp(milliseconds: touch.at)))
        }
        return touches
    }

    /// Puts back touches whose write failed (newer ones win).
    public func restore(_ touches: [Touch]) {
        for touch in touches {
            let packed = CompactID.pack(touch.sessionID)
            pendingShard(packed).state.withLock {
                $0.record(tenant: touch.tenantID, session: touch.sessionID, packed: packed, at: touch.at)
            }
        }
    }

    /// Entries, hits and misses (for metrics and tests).
    public var statistics: (entries: Int, hits: UInt64, misses: UInt64) {
        shards.reduce((entries: 0, hits: UInt64(0), misses: UInt64(0))) { total, shard in
            shard.state.withLock { (total.entries + $0.count, total.hits + $0.hits, total.misses + $0.misses) }
        }
    }

    /// Entries forgotten to make room (the cache was full), since start.
    public var evictions: UInt64 { shards.reduce(0) { total, shard in total + shard.state.withLock { $0.evictions } } }

    /// Distinct cached users (records shared by their sessions), for tests.
    var cachedUsers: Int { Set(shards.flatMap { shard in shard.state.withLock { Array($0.userIndex.keys) } }).count }

    /// User records: a user with sessions in several shards has one in each.
    var userRecords: Int { shards.reduce(0) { total, shard in total + shard.state.withLock { $0.userIndex.count } } }
}

/// Canonical identifiers (a prefix and 26 base32 characters encoding 16
/// bytes, the last character's two low bits zero) as 128 bits, and back.
enum CompactID {
    /// The 128 bits of a canonical identifier, or nil for any other text.
    static func pack<ID: PrefixedID>(_ id: ID) -> SessionCache.Bits128? {
        var text = id.rawValue
        return text.withUTF8 { utf8 -> SessionCache.Bits128? in
            let prefix = ID.prefix.utf8
            guard utf8.count == prefix.count + 26 else { return nil }
            var offset = 0
            for byte in prefix {
                guard utf8[offset] == byte else { return nil }
                offset += 1
            }
            var value: UInt128 = 0
            for position in 0..<26 {
                let character = utf8[offset + position]
                let digit: UInt8
                switch character {
                case 0x61...0x7A: digit = character - 0x61
                case 0x32...0x37: digit = character - 0x32 + 26
                default: return nil
                }
                if position < 25 {
                    value = value << 5 | UInt128(digit)
                } else {
                    guard digit & 3 == 0 else { return nil }
                    value = value << 3 | UInt128(digit >> 2)
                }
            }
            return SessionCache.Bits128(high: UInt64(truncatingIfNeeded: value >> 64), low: UInt64(truncatingIfNeeded: value))
        }
    }

    /// The identifier of 128 packed bits.
    static func unpack<ID: PrefixedID>(_ bits: SessionCache.Bits128) -> ID {
        let value = UInt128(bits.high) << 64 | UInt128(bits.low)
        let prefix = ID.prefix.utf8
        let text = String(unsafeUninitializedCapacity: prefix.count + 26) { buffer in
            var offset = 0
            for byte in prefix {
                buffer[offset] = byte
                offset += 1
            }
            for position in 0..<25 {
                buffer[offset] = character(UInt8(truncatingIfNeeded: value >> (123 - 5 * position)) & 31)
                offset += 1
            }
            buffer[offset] = character(UInt8(truncatingIfNeeded: value & 7) << 2)
            return offset + 1
        }
        return ID(unchecked: text)
    }

    @inline(__always)
    private static func character(_ digit: UInt8) -> UInt8 {
        digit < 26 ? 0x61 + digit : 0x32 + digit - 26
    }
}
