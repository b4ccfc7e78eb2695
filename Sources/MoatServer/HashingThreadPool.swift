public import MoatCore
import Metrics
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The daemon's ``HashingExecutor``: a `NIOThreadPool` of its own, with an
/// atomic count of the jobs it holds (running or waiting). At most
/// `threads + queueCapacity` are held; past that a caller gets
/// ``DomainError/hashingOverloaded`` at once instead of waiting, so a burst
/// of sign-ins never queues without bound.
public final class HashingThreadPool: HashingExecutor {
    /// Nice value of the pool's threads: hashing yields the CPU to the
    /// event loops, so a burst of sign-ins does not slow session checks.
    static let niceness: Int32 = 10

    private let pool: NIOThreadPool
    private let limit: Int
    private let held = Atomic<Int>(0)
    // Recorded per hash: a hash costs milliseconds, so the cost is nothing.
    private let depth = Gauge(label: "moat_password_hash_queue_depth")
    private let duration = Metrics.Timer(label: "moat_password_hash_duration_seconds")
    private let refused = Counter(label: "moat_password_hash_refused_total")

    /// Starts `threads` threads (at least one) that take jobs from a queue
    /// of at most `queueCapacity` (at least zero) waiting ones.
    public init(threads: Int, queueCapacity: Int) {
        let threads = max(1, threads)
        self.pool = NIOThreadPool(numberOfThreads: threads)
        self.limit = threads + max(0, queueCapacity)
        pool.start()
    }

    /// Starts the pool the configuration asks for.
    public convenience init(configuration: HashingConfiguration) {
        self.init(threads: configuration.workers, queueCapacity: configuration.queueCapacity)
    }

    /// Jobs running or waiting now.
    var heldJobs: Int { held.load(ordering: .relaxed) }

    /// Runs `body` on a pool thread, or throws OVERLOADED at once when the
    /// pool already holds as many jobs as it may (or has shut down).
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard admit() else {
            refused.increment()
            throw DomainError.hashingOverloaded
        }
        depth.record(heldJobs)
        let start = ContinuousClock.now
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            pool.submit { [self] state in
                let result: Result<T, any Error>
                switch state {
                case .active:
                    Self.lowerPriority()
                    result = Result { try body() }
                case .cancelled:
                    result = .failure(DomainError.hashingOverloaded)
                }
                // The slot frees before the caller resumes, so a caller that
                // submits again at once finds the thread free.
                let remaining = held.subtract(1, ordering: .releasing).newValue
                depth.record(remaining)
                duration.record(duration: ContinuousClock.now - start)
                continuation.resume(with: result)
            }
        }
    }

    /// Stops the threads after the jobs they hold; later jobs are refused.
    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }

    /// Takes a slot if one is free.
    private func admit() -> Bool {
        var current = held.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = held.compareExchange(
                expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Lowers the calling pool thread's priority. NIOThreadPool has no
    /// thread-start hook, so each job sets it: one cheap syscall against an
    /// Argon2id run of milliseconds.
    private static func lowerPriority() {
        #if os(Linux)
        // On Linux PRIO_PROCESS with 0 names the calling thread only.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        #endif
    }
}
