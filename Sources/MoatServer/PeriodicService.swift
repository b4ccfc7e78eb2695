import Logging
import MoatStore
import ServiceLifecycle

/// The one shape of the daemon's background jobs: a `Service` that runs its
/// work once after `firstDelay`, then every `interval`, on an injected
/// clock, until a graceful shutdown starts; then it runs its shutdown work
/// once and returns. A sleep in progress ends at once when the shutdown
/// starts. A failed run is logged and retried at the next interval; it
/// never ends the service.
struct PeriodicService: Service {
    /// Names the job in logs (`moat.job`).
    let name: String
    /// Time before the first run.
    let firstDelay: Duration
    /// Time between runs.
    let interval: Duration
    let clock: JobClock
    let logger: Logger
    /// One run of the job.
    let work: @Sendable () async throws -> Void
    /// Runs once when the job stops (after a graceful shutdown started).
    let atShutdown: @Sendable () async throws -> Void

    init(
        name: String, firstDelay: Duration, interval: Duration, clock: JobClock = .continuous,
        logger: Logger, work: @escaping @Sendable () async throws -> Void,
        atShutdown: @escaping @Sendable () async throws -> Void = {}
    ) {
        self.name = name
        self.firstDelay = firstDelay
        self.interval = interval
        self.clock = clock
        self.logger = logger
        self.work = work
        self.atShutdown = atShutdown
    }

    func run() async throws {
        var wait = firstDelay
        while !Task.isShuttingDownGracefully {
            do {
                // Wakes at once when a graceful shutdown starts.
                try await cancelWhenGracefulShutdown { [wait, clock] in try await clock.sleep(wait) }
            } catch {
                break
            }
            wait = interval
            await attempt(work, "failed; retried next interval")
        }
        await attempt(atShutdown, "failed at shutdown")
    }

    private func attempt(_ body: @Sendable () async throws -> Void, _ message: String) async {
        do {
            try await body()
        } catch {
            logger.warning("\(name) \(message)", metadata: ["moat.job": "\(name)", "moat.error": "\(error)"])
        }
    }
}

/// The clock a periodic service sleeps on: the continuous clock in the
/// daemon, a manual one in tests.
struct JobClock: Sendable {
    /// Sleeps for the duration; throws when the task is cancelled.
    let sleep: @Sendable (Duration) async throws -> Void

    /// Sleeps on `clock`.
    init<C: Clock>(_ clock: C) where C.Duration == Duration {
        sleep = { try await clock.sleep(for: $0) }
    }

    /// Real time that does not stop while the machine sleeps.
    static let continuous = JobClock(ContinuousClock())
}

/// Where a fleet-wide job's run goes ahead: always with SQLite (one
/// daemon per file); on PostgreSQL only on the instance that holds the
/// job's advisory lock, the others skipping that run.
struct JobGate: Sendable {
    /// Runs `body` unless another instance is running `job`.
    let run: @Sendable (BackgroundJob, @escaping @Sendable () async throws -> Void) async throws -> Void

    /// Every run goes ahead.
    static let always = JobGate { _, body in try await body() }
}
