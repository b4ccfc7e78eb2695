public import MoatCore
public import MoatRPC

/// The router of every service moatd answers, over the given domain
/// services: the daemon serves it, and the request fuzzer drives it
/// against a memory store.
public enum ServiceRouter {
    /// Every method, with Validate's and Health's fast paths.
    public static func make(
        accounts: AccountService, events: EventStream, serving: ServingState, extraServices: [any RPCService] = []
    ) -> Router {
        let sessions = SessionsHandler(accounts: accounts)
        let health = HealthService(state: serving)
        var router = Router(services: [
            health, TenantsHandler(accounts: accounts), UsersHandler(accounts: accounts), sessions,
            TwoFactorHandler(accounts: accounts),
            EventsHandler(events: events),
            TeamsHandler(accounts: accounts),
        ])
        // Answered on the event loop: Validate on a cache hit, Health always.
        router.register(sessions.validateWithFastPath)
        router.register(health.checkWithFastPath)
        for service in extraServices { router.register(service) }
        return router
    }
}
