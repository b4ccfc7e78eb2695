public import MoatCore
public import MoatRPC

/// The router of every service moatd answers, over the given domain
/// services: the daemon serves it, and the request fuzzer drives it
/// against a memory store.
public enum ServiceRouter {
    /// Every method, with Validate's and Health's fast paths, grpc.health.v1,
    /// and every method instrumented for metrics.
    ///
    /// - Parameters:
    ///   - operatorServices: services that need the daemon's own store and
    ///     key files (`moat.v1.Operations`); none for an in-memory router.
    ///   - extraServices: services an embedder adds; they may not take over
    ///     one of Moat's paths.
    ///   - clock: the daemon's clock (Health reports its start time by it).
    public static func make(
        accounts: AccountService, events: EventStream, serving: ServingState,
        operatorServices: [any RPCService] = [], extraServices: [any RPCService] = [],
        clock: any WallClock = SystemWallClock()
    ) throws(Router.RegistrationError) -> Router {
        let sessions = SessionsHandler(accounts: accounts)
        let health = HealthService(state: serving, clock: clock)
        var router = try Router(
            services: [
                health, TenantsHandler(accounts: accounts), UsersHandler(accounts: accounts), sessions,
                TwoFactorHandler(accounts: accounts),
                EventsHandler(events: events),
                TeamsHandler(accounts: accounts),
            ] + operatorServices)
        // Answered on the event loop: Validate on a cache hit, Health always.
        // They replace the generated entries, on purpose.
        try router.replace(sessions.validateWithFastPath)
        try router.replace(health.checkWithFastPath)
        // grpc.health.v1 for stock gRPC probes, knowing every service served.
        let services = Set(router.paths.compactMap { $0.split(separator: "/").first.map(String.init) })
        let grpcHealth = GRPCHealthService(state: serving, services: services.union(["grpc.health.v1.Health"]))
        try router.register(grpcHealth)
        try router.replace(grpcHealth.checkWithFastPath)
        for service in extraServices { try router.register(service) }
        return try RPCMetrics.instrument(router)
    }
}
