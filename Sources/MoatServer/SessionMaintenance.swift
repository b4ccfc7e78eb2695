import Logging
import MoatCore

#if canImport(Glibc)
import Glibc
#endif

/// Background session work: last-active times kept in memory are written
/// every flush interval (and once more on shutdown, after the server has
/// drained), and ended sessions are deleted after the retention period,
/// soon after start and then every cleanup interval.
enum SessionMaintenance {
    /// Writes the last-active times kept in memory. Runs on every instance
    /// (each flushes its own memory); the store only ever raises a
    /// last-active time, so flushes from several instances in any order
    /// keep the latest.
    static func lastActiveFlush(
        accounts: AccountService, settings: MoatConfiguration.Sessions, clock: JobClock = .continuous,
        logger: Logger
    ) -> PeriodicService {
        let every = Duration.seconds(settings.lastActiveFlushSeconds)
        return PeriodicService(
            name: "last-active flush", firstDelay: every, interval: every, clock: clock, logger: logger,
            work: {
                let flushed = try await accounts.sessions.flushLastActive()
                if flushed >= trimAfterTouches {
                    let took = releaseFreedMemory()
                    logger.debug(
                        "returned freed memory after a large flush",
                        metadata: ["moat.count": "\(flushed)", "moat.duration": "\(took)"])
                }
            },
            atShutdown: { _ = try await accounts.sessions.flushLastActive() })
    }

    /// A flush of this many touches follows a burst of new activity (a
    /// warm-up, a sign-in wave) whose short-lived allocations the C
    /// allocator keeps on its free lists; they are handed back then.
    static let trimAfterTouches = 100_000

    /// Hands memory the C allocator holds free back to the system
    /// (glibc's `malloc_trim`); returns how long it took.
    static func releaseFreedMemory() -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        if let trim = mallocTrim { _ = trim(0) }
        return clock.now - start
    }

    /// glibc's `malloc_trim(size_t pad)`, looked up once (the Glibc module
    /// does not export it); nil on other C libraries.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()

    /// Deletes sessions that ended more than the retention period ago.
    static func cleanup(
        accounts: AccountService, settings: MoatConfiguration.Sessions, clock: JobClock = .continuous,
        gate: JobGate = .always, logger: Logger
    ) -> PeriodicService {
        let retentionSeconds = Int64(settings.retentionDays) * 86400
        return PeriodicService(
            name: "session cleanup", firstDelay: .seconds(min(60, settings.cleanupIntervalSeconds)),
            interval: .seconds(settings.cleanupIntervalSeconds), clock: clock, logger: logger
        ) {
            // Flushes this instance's last-active times first, so no
            // session live here looks ended. (Another instance's unflushed
            // activity is younger than one flush interval, far inside the
            // retention period, so it cannot make a live session look ended
            // that long ago.)
            try await gate.run(.sessionCleanup) {
                let deleted = try await accounts.sessions.purgeEndedSessions(retentionSeconds: retentionSeconds)
                if deleted > 0 { logger.info("deleted ended sessions", metadata: ["moat.count": "\(deleted)"]) }
            }
        }
    }
}
