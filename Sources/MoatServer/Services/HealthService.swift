import Foundation
public import MoatCore
public import MoatProto
public import MoatRPC
import Synchronization

/// Whether the daemon is taking calls; flipped when a shutdown starts.
public final class ServingState: Sendable {
    private let serving = Atomic<Bool>(true)

    /// Whether the store answers (its probe's last reading).
    public let store = StoreReadiness()
    /// The cache fence of a store shared with other daemons (PostgreSQL);
    /// nil on a store only this process writes.
    public let fence: CacheFence?

    /// Creates a state that starts serving.
    public init(fence: CacheFence? = nil) {
        self.fence = fence
    }

    /// Whether calls are being taken.
    public var isServing: Bool { serving.load(ordering: .relaxed) }

    /// Marks the daemon as draining.
    public func stopServing() { serving.store(false, ordering: .relaxed) }
}

/// `moat.v1.Health`: serving status, version, uptime, and whether the
/// store answers.
public struct HealthService: Moat_V1_HealthService {
    private let version: String
    private let startedAtUnix: Int64
    private let startedInstant: ContinuousClock.Instant
    private let state: ServingState

    /// Creates the service; uptime counts from now, and the start time it
    /// reports is `clock`'s now (the daemon's clock).
    public init(version: String = MoatVersion.current, state: ServingState, clock: any WallClock = SystemWallClock()) {
        self.version = version
        self.startedAtUnix = clock.now().milliseconds / 1000
        self.startedInstant = .now
        self.state = state
    }

    public func check(request: Moat_V1_CheckRequest, context: RequestContext) async throws -> Moat_V1_CheckResponse {
        answer()
    }

    /// Check answered on the transport's thread (it never blocks).
    public var checkWithFastPath: ServerMethod {
        .unary(
            Moat_V1_Health.Method.check,
            fastPath: { (_: Moat_V1_CheckRequest, _) in self.answer() },
            handler: { _, _ in self.answer() })
    }

    private func answer() -> Moat_V1_CheckResponse {
        var response = Moat_V1_CheckResponse()
        response.status = state.isServing ? .serving : .notServing
        response.version = version
        response.uptimeSeconds = UInt64(max(0, (ContinuousClock.now - startedInstant).components.seconds))
        response.startedAtUnix = startedAtUnix
        let store = state.store.status
        response.store = store.isReady ? .storeReady : .storeUnavailable
        response.storeReason = store.reason ?? ""
        response.storeUnavailableSeconds = store.since.map {
            UInt64(max(0, (ContinuousClock.now - $0).components.seconds))
        } ?? 0
        if let fence = state.fence {
            response.cachesFenced = !fence.isCurrent
            response.fenceAgeMs = fence.age.map { UInt64(max(0, $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000)) } ?? 0
        }
        return response
    }
}
