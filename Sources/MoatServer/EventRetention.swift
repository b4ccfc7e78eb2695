import Logging
import MoatCore
import ServiceLifecycle

/// Background event-stream work: every prune interval deletes events that
/// every consumer acknowledged and that are past the retention age. When a
/// graceful shutdown starts it wakes every waiting long poll (they answer
/// empty), so the server's drain is not held up by them; it is listed after
/// the server so the group tells it first.
struct EventRetention: Service {
    let events: EventStream
    let settings: MoatConfiguration.Events
    let logger: Logger

    func run() async throws {
        defer { events.shutDown() }
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown {
                    try await Task.sleep(for: .seconds(settings.pruneIntervalSeconds))
                }
            } catch {
                break
            }
            do {
                let deleted = try await events.prune()
                if deleted > 0 { logger.info("deleted acknowledged events", metadata: ["moat.count": "\(deleted)"]) }
            } catch {
                logger.warning("event retention failed", metadata: ["moat.error": "\(error)"])
            }
        }
    }
}
