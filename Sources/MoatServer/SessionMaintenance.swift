import Logging
import MoatCore
import ServiceLifecycle

/// Background session work: writes last-active times kept in memory every
/// flush interval (and once more on shutdown), and deletes ended sessions
/// after the retention period.
struct SessionMaintenance: Service {
    let accounts: AccountService
    let settings: MoatConfiguration.Sessions
    let logger: Logger

    func run() async throws {
        var sinceCleanup = Duration.zero
        let flushEvery = Duration.seconds(settings.lastActiveFlushSeconds)
        // First cleanup soon after start, then every interval.
        var cleanupDue = Duration.seconds(min(60, settings.cleanupIntervalSeconds))
        while !Task.isShuttingDownGracefully {
            do {
                // Wakes at once when a graceful shutdown starts.
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: flushEvery) }
            } catch {
                break
            }
            await flush()
            sinceCleanup += flushEvery
            if sinceCleanup >= cleanupDue {
                sinceCleanup = .zero
                cleanupDue = .seconds(settings.cleanupIntervalSeconds)
                do {
                    let deleted = try await accounts.purgeEndedSessions(
                        retentionSeconds: Int64(settings.retentionDays) * 86400)
                    if deleted > 0 { logger.info("deleted ended sessions", metadata: ["moat.count": "\(deleted)"]) }
                } catch {
                    logger.warning("session cleanup failed", metadata: ["moat.error": "\(error)"])
                }
            }
        }
        await flush()
    }

    private func flush() async {
        do {
            try await accounts.flushLastActive()
        } catch {
            logger.warning("last-active flush failed; kept for the next one", metadata: ["moat.error": "\(error)"])
        }
    }
}
