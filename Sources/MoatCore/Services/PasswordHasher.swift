import Foundation
public import MoatCrypto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Password hashing settings.
public struct HashingConfiguration: Sendable, Equatable {
    /// Argon2id parameters for new hashes. Default m=19456 KiB, t=2, p=1
    /// (OWASP).
    public var parameters = Argon2Parameters()
    /// Hashing threads. Default: the number of cores.
    public var workers = ProcessInfo.processInfo.activeProcessorCount
    /// Hashes that may wait for a thread; past this, OVERLOADED.
    /// Default 64.
    public var queueCapacity = 64

    public init() {}
}

/// Argon2id on a bounded pool of its own threads, so a burst of sign-ins
/// never occupies the threads that serve session checks, and never queues
/// without bound: when the queue is full, callers get RESOURCE_EXHAUSTED
/// (`OVERLOADED`) at once.
public final class PasswordHasher: Sendable {
    /// The settings in use.
    public let configuration: HashingConfiguration
    private let pool: WorkerPool
    /// A hash of a random password, verified against when an email is
    /// unknown so that answer costs the same as a known one.
    private let decoy: String

    /// Starts the hashing threads.
    public init(configuration: HashingConfiguration = HashingConfiguration()) throws {
        self.configuration = configuration
        self.pool = WorkerPool(
            name: "moat-argon2", threads: max(1, configuration.workers), capacity: max(0, configuration.queueCapacity))
        self.decoy = try Argon2id.hash(password: SecureBytes.random(16), parameters: configuration.parameters)
    }

    /// A new PHC string for the password (NFC-normalized bytes).
    public func hash(_ password: [UInt8]) async throws -> String {
        let parameters = configuration.parameters
        return try await pool.run { try Argon2id.hash(password: password, parameters: parameters) }
    }

    /// Whether the password matches the PHC string.
    public func verify(_ password: [UInt8], against phc: String) async throws -> Bool {
        try await pool.run { Argon2id.verify(password: password, phc: phc) }
    }

    /// The same work as a verification, for an unknown account; always false.
    public func verifyDecoy(_ password: [UInt8]) async throws -> Bool {
        let decoy = self.decoy
        _ = try await pool.run { Argon2id.verify(password: password, phc: decoy) }
        return false
    }

    /// Whether a stored hash was made with other parameters than today's.
    public func needsRehash(_ phc: String) -> Bool {
        Argon2id.needsRehash(phc: phc, parameters: configuration.parameters)
    }

    /// Stops the threads after the queued work.
    public func shutdown() { pool.shutdown() }
}

/// A fixed set of threads taking jobs from a bounded queue.
final class WorkerPool: Sendable {
    private struct Job: Sendable {
        /// Does the work and returns how to hand its result over; the pool
        /// frees its slot before handing over, so a caller that immediately
        /// submits again finds the thread free.
        let work: @Sendable () -> @Sendable () -> Void
    }

    private struct State {
        var queue: [Job] = []
        var head = 0
        var busy = 0
        var stopped = false
    }

    private let condition = NSCondition()
    private let state = Mutex(State())
    private let capacity: Int
    private let threads: Int

    /// Nice value of the pool's threads: hashing yields the CPU to the
    /// event loops, so a burst of sign-ins does not slow session checks.
    static let niceness: Int32 = 10

    init(name: String, threads: Int, capacity: Int) {
        self.capacity = capacity
        self.threads = threads
        for index in 0..<threads {
            let thread = Thread { [self] in
                #if os(Linux)
                // On Linux PRIO_PROCESS with 0 names the calling thread only.
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, Self.niceness)
                #endif
                loop()
            }
            thread.name = "\(name)-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body` on a pool thread. Throws OVERLOADED when every thread is
    /// busy and the queue is full.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job {
                let result = Result { try body() }
                return { continuation.resume(with: result) }
            }
            condition.lock()
            let accepted = state.withLock { state -> Bool in
                let waiting = state.queue.count - state.head
                guard !state.stopped, waiting < capacity || state.busy + waiting < threads else { return false }
                state.queue.append(job)
                return true
            }
            if accepted { condition.signal() }
            condition.unlock()
            if !accepted {
                continuation.resume(
                    throwing: DomainError(
                        .resourceExhausted, .overloaded, "too many password checks in progress; try again shortly",
                        details: ["retry_after_seconds": "1"]))
            }
        }
    }

    func shutdown() {
        condition.lock()
        state.withLock { $0.stopped = true }
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            var job: Job?
            while true {
                let (next, stopped) = state.withLock { state -> (Job?, Bool) in
                    guard state.head < state.queue.count else { return (nil, state.stopped) }
                    let job = state.queue[state.head]
                    state.head += 1
                    state.busy += 1
                    if state.head > 64, state.head * 2 > state.queue.count {
                        state.queue.removeFirst(state.head)
                        state.head = 0
                    }
                    return (job, false)
                }
                if let next {
                    job = next
                    break
                }
                if stopped {
                    condition.unlock()
                    return
                }
                condition.wait()
            }
            condition.unlock()
            guard let job else { continue }
            let handOver = job.work()
            state.withLock { $0.busy -= 1 }
            handOver()
        }
    }
}
