import Synchronization

/// What a write transaction changed that a cached Validate answer depends
/// on: the users whose sessions, status, role, email or 2FA state changed,
/// the tenants whose row changed (policy, status, deletion), or everything.
///
/// The store's writers record these inside the transaction (every
/// `AccountStoreWriter` method that can make a cached answer wrong marks
/// what it touched; `ValidityMarkTests` holds the list). After the commit,
/// and before `AccountStore.write` returns, the store hands them to its
/// ``ValidityMarkRelay``, whose subscribers (the ``SessionAuthority``) drop
/// what they cached. A plain value, so it can travel: a store shared by
/// several daemons publishes the same marks to the other instances.
public struct ValidityMarks: Sendable, Equatable {
    /// Users whose cached sessions must be dropped.
    public var users: Set<UserID> = []
    /// Tenants whose cached row must be dropped.
    public var tenants: Set<TenantID> = []
    /// Drop everything cached (a change too wide to name, e.g. a tenant's
    /// rows deleted).
    public var all = false

    /// No marks.
    public init(users: Set<UserID> = [], tenants: Set<TenantID> = [], all: Bool = false) {
        self.users = users
        self.tenants = tenants
        self.all = all
    }

    /// Whether nothing was marked.
    public var isEmpty: Bool { !all && users.isEmpty && tenants.isEmpty }

    /// Adds another transaction's (or statement's) marks.
    public mutating func formUnion(_ other: ValidityMarks) {
        users.formUnion(other.users)
        tenants.formUnion(other.tenants)
        all = all || other.all
    }
}

/// Receives the marks of committed writes.
public protocol ValidityMarkSink: AnyObject, Sendable {
    /// Called once per write that marked something, after its commit and
    /// before the write returns to its caller. Must not block or suspend.
    func apply(_ marks: ValidityMarks)
}

/// The one place a store's validity marks go after commit: every
/// subscriber gets them, synchronously, before `write` returns.
///
/// This is also the hook for more than one daemon on one database: the
/// PostgreSQL store writes each transaction's marks to a revocation log in
/// that transaction, and publishes the marks it reads there from the other
/// instances through ``publish(_:)`` on its own relay, whose ``fence`` says
/// whether it is caught up. Subscribers are held weakly (see below).
public final class ValidityMarkRelay: Sendable {
    /// Subscribers are held weakly: the session authority holds the store
    /// that holds this relay, and a strong reference back would keep both
    /// alive for ever once their owner lets go (found by the request fuzzer,
    /// which builds and drops whole in-memory daemons).
    private struct Subscriber {
        weak var sink: (any ValidityMarkSink)?
    }

    private let sinks = Mutex<[Subscriber]>([])

    /// When marks can be committed by another process too (several moatd
    /// on one PostgreSQL), the fence that says whether this instance has
    /// applied them all recently enough to answer from its caches; nil for
    /// a store only this process writes (SQLite, memory).
    public let fence: CacheFence?

    /// A relay with no subscribers, and a fence when other processes write
    /// the same store.
    public init(fence: CacheFence? = nil) {
        self.fence = fence
    }

    /// Adds a subscriber, for as long as something else keeps it alive.
    public func subscribe(_ sink: any ValidityMarkSink) {
        sinks.withLock { sinks in
            sinks.removeAll { $0.sink == nil }
            sinks.append(Subscriber(sink: sink))
        }
    }

    /// Hands marks to every live subscriber (nothing for empty marks).
    public func publish(_ marks: ValidityMarks) {
        guard !marks.isEmpty else { return }
        for sink in sinks.withLock({ $0.compactMap(\.sink) }) { sink.apply(marks) }
    }
}

/// Marks collected during one write transaction. A reference, so a
/// transaction's value-typed views all record into the same one.
public final class ValidityMarker: Sendable {
    private let state = Mutex(ValidityMarks())

    /// An empty marker.
    public init() {}

    /// Marks a user's cached sessions stale.
    public func user(_ id: UserID) { state.withLock { _ = $0.users.insert(id) } }
    /// Marks a tenant's cached row stale.
    public func tenant(_ id: TenantID) { state.withLock { _ = $0.tenants.insert(id) } }
    /// Marks everything stale.
    public func everything() { state.withLock { $0.all = true } }

    /// What was marked so far.
    public var marks: ValidityMarks { state.withLock { $0 } }
}

extension User {
    /// Whether a cached Validate answer for `other` would be the same as
    /// for this user: same status, role, email and 2FA state. A user update
    /// that changes any of them marks the user.
    public func validatesLike(_ other: User) -> Bool {
        status == other.status && role == other.role && email == other.email
            && twoFactorEnabled == other.twoFactorEnabled
    }
}
