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
        var epoch: UInt64 = 0
        var pending: [Bits128: PendingTouch] = [:]
        /// Touches of sessions whose ids are not canonical (never cached).
        var pendingOther: [SessionID: Touch] = [:]
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

        /// The record of a user, made or refreshed from a load.
        mutating func userSlot(
            user: Bits128, tenant: Bits128, email: String, role: TenantRole, status: UserStatus, twoFactorEnabled: Bool
        ) -> UInt32 {
            if let slot = userIndex[user] {
                if users[Int(slot)].tenant == tenant {
                    // A load under the current epoch is the user as now
                    // stored; every session of the user answers with it.
                    users[Int(slot)].email = email
                    users[Int(slot)].role = role
                    users[Int(slot)].status = status
                    users[Int(slot)].twoFactorEnabled = twoFactorEnabled
                    return slot
                }
                // The same user id in another tenant: trust neither.
                removeUser(slot: slot)
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

        func pendingAt(_ session: SessionID, packed: Bits128?) -> Timestamp? {
            if let packed, let touch = pending[packed] { return Timestamp(milliseconds: touch.at) }
            return pendingOther[session]?.at
        }

        mutating func recordTouch(tenant: TenantID, session: SessionID, at now: Timestamp) {
            if let packedSession = CompactID.pack(session), let packedTenant = CompactID.pack(tenant) {
                if let existing = pending[packedSession], existing.at >= now.milliseconds { return }
                pending[packedSession] = PendingTouch(tenant: packedTenant, at: now.milliseconds)
            } else {
                if let existing = pendingOther[session], existing.at >= now { return }
                pendingOther[session] = Touch(tenantID: tenant, sessionID: session, at: now)
            }
        }
    }

    private let state = Mutex(State())
    /// The most entries kept.
    public let capacity: Int
    /// Activity closer together than this is not written again.
    public let touchGranularityMilliseconds: Int64

    /// Creates a cache.
    public init(capacity: Int = 100_000, touchGranularityMilliseconds: Int64 = 1000) {
        // Slots are 32-bit indices.
        self.capacity = min(max(0, capacity), Int(UInt32.max - 1))
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
            return state.withLock { state in
                state.misses += 1
                return .miss(epoch: state.epoch)
            }
        }
        let askedTenant = CompactID.pack(tenant)
        let outcome: Outcome = state.withLock { state in
            guard let slot = state.index[split.key], state.entries[Int(slot)].tail == split.tail else {
                state.misses += 1
                return .lookup(.miss(epoch: state.epoch))
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
                state.pending[entry.session] = PendingTouch(tenant: askedTenant, at: now.milliseconds)
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
    public var epoch: UInt64 { state.withLock { $0.epoch } }

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
        state.withLock { state in
            guard state.epoch == epoch else { return }
            var lastActive = session.lastActiveAt.milliseconds
            if let pending = state.pending[packedSession], pending.at > lastActive { lastActive = pending.at }
            if let existing = state.index[split.key] {
                state.remove(slot: existing)
            } else if state.count >= capacity {
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
        }
    }

    /// Records activity of a session validated from the store.
    public func touch(tenant: TenantID, session: SessionID, at now: Timestamp) {
        state.withLock { state in state.recordTouch(tenant: tenant, session: session, at: now) }
    }

    /// Drops every cached session of a user (the authority applies a
    /// write's marks with it).
    public func invalidate(user: UserID) {
        let packed = CompactID.pack(user)
        state.withLock { state in
            state.epoch &+= 1
            if let packed, let slot = state.userIndex[packed] { state.removeUser(slot: slot) }
        }
    }

    /// Drops everything (a tenant-wide change).
    public func invalidateAll() {
        state.withLock { state in
            state.epoch &+= 1
            state.index = [:]
            state.entries = []
            state.freeEntry = Entry.none
            state.userIndex = [:]
            state.users = []
            state.freeUser = Entry.none
            state.evictionCursor = 0
        }
    }

    /// The not-yet-written last-active time of a session, if any.
    public func pendingLastActive(_ session: SessionID) -> Timestamp? {
        let packed = CompactID.pack(session)
        return state.withLock { $0.pendingAt(session, packed: packed) }
    }

    /// Takes the last-active times waiting to be written.
    public func takePendingTouches() -> [Touch] {
        let (packed, other) = state.withLock { state in
            // Swapped out whole, so the memory of a burst goes with it.
            defer {
                state.pending = [:]
                state.pendingOther = [:]
            }
            return (state.pending, state.pendingOther)
        }
        var touches = Array(other.values)
        touches.reserveCapacity(packed.count + other.count)
        // One string per tenant, not per touch: a flush of a burst is
        // otherwise millions of short-lived allocations.
        var tenants: [Bits128: TenantID] = [:]
        for (session, touch) in packed {
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
        state.withLock { state in
            for touch in touches { state.recordTouch(tenant: touch.tenantID, session: touch.sessionID, at: touch.at) }
        }
    }

    /// Entries, hits and misses (for metrics and tests).
    public var statistics: (entries: Int, hits: UInt64, misses: UInt64) {
        state.withLock { ($0.count, $0.hits, $0.misses) }
    }

    /// Entries forgotten to make room (the cache was full), since start.
    public var evictions: UInt64 { state.withLock { $0.evictions } }

    /// Cached users (records shared by their sessions), for tests.
    var cachedUsers: Int { state.withLock { $0.userIndex.count } }
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
