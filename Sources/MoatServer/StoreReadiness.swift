import Logging
import MoatStore
import Synchronization

/// Whether the store answers, as its probe last found it: what Health
/// reports as `store` and `store_reason`. Starts ready (the daemon opened
/// the store before serving).
public final class StoreReadiness: Sendable {
    /// One reading.
    public struct Status: Sendable, Equatable {
        /// The last probe succeeded.
        public var isReady: Bool
        /// The stable reason of the last failure (a `StoreError` reason such
        /// as `STORE_UNAVAILABLE`); nil while ready.
        public var reason: String?
        /// When the store stopped answering; nil while ready.
        public var since: ContinuousClock.Instant?
    }

    private let state = Mutex(Status(isReady: true, reason: nil, since: nil))

    /// Creates a readiness that starts ready.
    public init() {}

    /// The current reading.
    public var status: Status { state.withLock { $0 } }

    /// Records a successful probe; true if the store was unavailable until now.
    @discardableResult
    public func recordReady() -> Bool {
        state.withLock { status in
            defer { status = Status(isReady: true, reason: nil, since: nil) }
            return !status.isReady
        }
    }

    /// Records a failed probe; true if the store was ready until now.
    @discardableResult
    public func recordUnavailable(reason: String) -> Bool {
        state.withLock { status in
            let wasReady = status.isReady
            status = Status(isReady: false, reason: reason, since: status.since ?? .now)
            return wasReady
        }
    }
}

/// Probes the store every interval with a read transaction (on PostgreSQL
/// one `SELECT 1` on a pool connection, reconnecting if it dropped) and
/// records the outcome in ``StoreReadiness``; logs each change once.
enum StoreProbe {
    static func service(
        backend: StoreBackend, readiness: StoreReadiness, interval: Duration, clock: JobClock = .continuous,
        logger: Logger
    ) -> PeriodicService {
        PeriodicService(name: "store probe", firstDelay: interval, interval: interval, clock: clock, logger: logger) {
            do {
                try await backend.probeRead()
                if readiness.recordReady() { logger.notice("the store answers again") }
            } catch {
                let reason = (error as? StoreError)?.reason.rawValue ?? StoreError.Reason.unavailable.rawValue
                if readiness.recordUnavailable(reason: reason) {
                    logger.error(
                        "the store does not answer; serving cached Validates, writes answer UNAVAILABLE",
                        metadata: ["moat.reason": "\(reason)", "moat.error": "\(error)"])
                }
            }
        }
    }
}
