import Foundation
import Synchronization

/// Whether this instance may answer from its caches: the fencing rule of a
/// store shared by several daemons.
///
/// A store whose writes can happen in another process (PostgreSQL with
/// several moatd) confirms, every few milliseconds, that it has applied
/// every validity mark committed anywhere up to some instant, and records
/// that instant here (``confirm(asOf:)``). The caches are trusted only
/// while that confirmation is younger than ``bound``; after that (the
/// instance was paused, partitioned, or the database went away) the
/// ``SessionAuthority`` answers from the store, as on a cache miss. A
/// revoking call elsewhere returns at the latest one bound after its
/// commit, so a stale answer would need a confirmation older than the
/// bound: exactly what this refuses.
///
/// The check is one atomic load and one `clock_gettime`. Times are
/// `CLOCK_BOOTTIME` nanoseconds, which keep counting while the process is
/// stopped or the machine is suspended (a monotonic clock that paused with
/// a suspended host would let it wake up believing itself current). A
/// store on one process (SQLite, memory) has no fence.
public final class CacheFence: Sendable {
    /// How long a confirmation is trusted.
    public let bound: Duration
    private let boundNanoseconds: Int64
    /// Boot-time nanoseconds of the last confirmation; 0 for never.
    private let confirmed = Atomic<Int64>(0)

    /// A fence that has not been confirmed yet (so not current).
    public init(bound: Duration) {
        self.bound = bound
        let parts = bound.components
        boundNanoseconds = max(1, parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000)
    }

    /// Whether the caches may answer now: confirmed less than ``bound`` ago.
    @inline(__always)
    public var isCurrent: Bool {
        let confirmed = self.confirmed.load(ordering: .acquiring)
        return confirmed != 0 && Self.now() - confirmed < boundNanoseconds
    }

    /// Records that every mark committed before `instant` (a ``now()``
    /// value taken before the check that established it) has been applied
    /// to the caches. Call after applying them; a confirmation older than
    /// the one recorded is ignored.
    public func confirm(asOf instant: Int64) {
        confirmed.max(instant, ordering: .releasing)
    }

    /// Forgets every confirmation: the caches are not trusted until the
    /// next ``confirm(asOf:)`` (the instance lost its registration).
    public func lapse() {
        confirmed.store(0, ordering: .releasing)
    }

    /// How long ago the last confirmation was, or nil if there was none.
    public var age: Duration? {
        let confirmed = self.confirmed.load(ordering: .acquiring)
        guard confirmed != 0 else { return nil }
        return .nanoseconds(Self.now() - confirmed)
    }

    /// Now, in boot-time nanoseconds (counting while stopped or suspended).
    @inline(__always)
    public static func now() -> Int64 {
        var time = timespec()
        #if os(Linux)
            clock_gettime(CLOCK_BOOTTIME, &time)
        #else
            clock_gettime(CLOCK_MONOTONIC, &time)
        #endif
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
