import Logging
import MoatCore

/// Deletes accounts and tenants whose deletion grace period has ended,
/// soon after start and then every purge interval.
enum PurgeJob {
    /// The purge as a periodic service.
    static func service(
        accounts: AccountService, intervalSeconds: Int64, clock: JobClock = .continuous, gate: JobGate = .always,
        logger: Logger
    ) -> PeriodicService {
        PeriodicService(
            name: "purge", firstDelay: .seconds(min(30, intervalSeconds)), interval: .seconds(intervalSeconds),
            clock: clock, logger: logger
        ) {
            try await gate.run(.purge) { try await purge(accounts: accounts, logger: logger) }
        }
    }

    private static func purge(accounts: AccountService, logger: Logger) async throws {
        let report = try await accounts.deletion.purgeDueDeletions()
        MetricsExporter.recordPurges(report)
        if report.failed > 0 {
            logger.warning("some purges failed; retried next interval", metadata: ["moat.count": "\(report.failed)"])
        }
        if report.accounts > 0 || report.tenants > 0 {
            logger.notice(
                "purged deleted accounts and tenants",
                metadata: ["moat.accounts": "\(report.accounts)", "moat.tenants": "\(report.tenants)"])
        }
    }
}
