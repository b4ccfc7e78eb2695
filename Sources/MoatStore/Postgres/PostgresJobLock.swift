import Dispatch
import Foundation

/// A background job that at most one moatd on a PostgreSQL database runs
/// at a time.
public enum BackgroundJob: Int64, Sendable, CaseIterable {
    /// Deleting accounts and tenants whose grace period ended.
    case purge = 1
    /// Deleting ended sessions and expired two-factor state.
    case sessionCleanup = 2
    /// Deleting acknowledged, old events.
    case eventRetention = 3

    /// The session-level advisory lock key of the job: "moat" in the high
    /// 32 bits (as the migration lock), the job in the low ones.
    public var lockKey: Int64 { (PostgresDatabase.migrationLockKey << 32) | rawValue }
}

extension PostgresAccountStore {
    /// Runs `body` only if no other instance on the database is running the
    /// same job: holds `pg_try_advisory_lock` on a connection of its own
    /// (not the pool's) while `body` runs, and returns nil without running it
    /// when another holds the lock.
    ///
    /// The jobs are also idempotent (each batch re-reads what it deletes in a
    /// serializable transaction), so the lock saves duplicate work and
    /// conflicts rather than carrying correctness: if its connection drops
    /// mid-run, PostgreSQL releases the lock and another instance may start.
    public func exclusively<T: Sendable>(_ job: BackgroundJob, _ body: @Sendable () async throws -> T) async throws -> T? {
        let holder = PostgresLockHolder(configuration: database.configuration, key: job.lockKey)
        guard try await holder.acquire() else { return nil }
        defer { holder.release() }
        return try await body()
    }
}

/// One advisory lock on one dedicated connection, held by a thread of its
/// own (libpq calls never run on the caller's threads) until released.
private final class PostgresLockHolder: Sendable {
    private let configuration: PostgresConfiguration
    private let key: Int64
    private let done = DispatchSemaphore(value: 0)

    init(configuration: PostgresConfiguration, key: Int64) {
        self.configuration = configuration
        self.key = key
    }

    /// Connects and tries the lock; true if it is now held (until ``release()``).
    func acquire() async throws -> Bool {
        try await withCheckedThrowingContinuation { (acquired: CheckedContinuation<Bool, any Error>) in
            let thread = Thread { [self] in
                let connection: PostgresConnection
                let got: Bool
                do {
                    connection = try PostgresConnection(url: configuration.url, password: configuration.password)
                    got = try PostgresQuerying(connection: connection).queryFirst(
                        "SELECT pg_try_advisory_lock(?) AS got", [key]
                    ) { try $0.bool("got") } ?? false
                } catch {
                    acquired.resume(throwing: error)
                    return
                }
                acquired.resume(returning: got)
                if got {
                    done.wait()
                    _ = try? PostgresQuerying(connection: connection).execute("SELECT pg_advisory_unlock(?)", [key])
                }
                connection.close()
            }
            thread.name = PostgresDatabase.threadNamePrefix + "job"
            thread.start()
        }
    }

    /// Lets the holding thread unlock and disconnect.
    func release() { done.signal() }
}
