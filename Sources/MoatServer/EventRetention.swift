import Logging
import MoatCore

/// Background event-stream work: every prune interval deletes events that
/// every consumer acknowledged and that are past the retention age. When a
/// graceful shutdown starts it wakes every waiting long poll (they answer
/// empty), so the server's drain is not held up by them; it is listed after
/// the server so the group tells it first.
enum EventRetention {
    /// The pruning as a periodic service.
    static func service(
        events: EventStream, settings: MoatConfiguration.Events, clock: JobClock = .continuous,
        gate: JobGate = .always, logger: Logger
    ) -> PeriodicService {
        let every = Duration.seconds(settings.pruneIntervalSeconds)
        return PeriodicService(
            name: "event retention", firstDelay: every, interval: every, clock: clock, logger: logger,
            work: {
                try await gate.run(.eventRetention) {
                    let deleted = try await events.prune()
                    if deleted > 0 { logger.info("deleted acknowledged events", metadata: ["moat.count": "\(deleted)"]) }
                }
            },
            atShutdown: { events.shutDown() })
    }
}
