import Logging
import MoatCore
import ServiceLifecycle

/// Deletes accounts and tenants whose deletion grace period has ended,
/// soon after start and then every purge interval.
struct PurgeJob: Service {
    let accounts: AccountService
    let intervalSeconds: Int64
    let logger: Logger

    func run() async throws {
        var wait = Duration.seconds(min(30, intervalSeconds))
        while !Task.isShuttingDownGracefully {
            do {
                // Wakes at once when a graceful shutdown starts.
                try await cancelWhenGracefulShutdown { [wait] in try await Task.sleep(for: wait) }
            } catch {
                break
            }
            wait = .seconds(intervalSeconds)
            do {
                let report = try await accounts.purgeDueDeletions()
                MetricsExporter.recordPurges(report)
                if report.failed > 0 {
                    logger.warning("some purges failed; retried next interval", metadata: ["moat.count": "\(report.failed)"])
                }
                if report.accounts > 0 || report.tenants > 0 {
                    logger.notice(
                        "purged deleted accounts and tenants",
                        metadata: ["moat.accounts": "\(report.accounts)", "moat.tenants": "\(report.tenants)"])
                }
            } catch {
                logger.warning("purge failed; retried next interval", metadata: ["moat.error": "\(error)"])
            }
        }
    }
}
