import Dispatch
import MoatCore
import MoatCrypto
import Synchronization
import XCTest

@testable import MoatServer

#if canImport(Glibc)
import Glibc
#endif

/// Set once; tasks await it instead of polling.
private final class Latch: Sendable {
    private let state = Mutex((open: false, waiters: [CheckedContinuation<Void, Never>]()))

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var isOpen: Bool { state.withLock { $0.open } }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state -> Bool in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }
}

/// Yields until the pool holds `count` jobs: admission happens on the
/// submitting task, before it suspends, so there is no event to await.
private func waitUntilHeld(
    _ pool: HashingThreadPool, _ count: Int, file: StaticString = #filePath, line: UInt = #line
) async {
    let deadline = ContinuousClock.now + .seconds(10)
    while pool.heldJobs != count {
        guard ContinuousClock.now < deadline else {
            XCTFail("the pool never held \(count) jobs (holds \(pool.heldJobs))", file: file, line: line)
            return
        }
        await Task.yield()
    }
}

private func assertOverloaded<T>(
    file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T
) async {
    do {
        _ = try await body()
        XCTFail("expected OVERLOADED", file: file, line: line)
    } catch let error as DomainError {
        XCTAssertEqual(error.kind, .resourceExhausted, file: file, line: line)
        XCTAssertEqual(error.reason, "OVERLOADED", file: file, line: line)
        XCTAssertEqual(error.details["retry_after_seconds"], "1", file: file, line: line)
    } catch {
        XCTFail("unexpected \(error)", file: file, line: line)
    }
}

/// The daemon's hashing pool: at most threads + queue capacity jobs held,
/// refusals at once past that, a slot freed before its caller resumes, and
/// low-priority threads.
final class HashingThreadPoolTests: XCTestCase {
    /// Slow enough (tenths of a second) that a test sees a hash running.
    static let slow = Argon2Parameters(memoryKiB: 65536, iterations: 6, parallelism: 1)

    func testPoolRefusesAtOnceWhenThreadsAndQueueAreFull() async throws {
        let pool = HashingThreadPool(threads: 1, queueCapacity: 1)
        let gate = DispatchSemaphore(value: 0)
        let running = Latch()
        let first = Task {
            try await pool.run { () -> Int in
                running.open()
                _ = gate.wait(timeout: .now() + 30)
                return 1
            }
        }
        await running.wait()
        let second = Task { try await pool.run { 2 } }
        await waitUntilHeld(pool, 2)

        // One running, one waiting: the third is refused without waiting.
        let clock = ContinuousClock()
        let start = clock.now
        await assertOverloaded { try await pool.run { 3 } }
        XCTAssertLessThan(start.duration(to: clock.now), .seconds(1))

        gate.signal()
        let one = try await first.value
        let two = try await second.value
        XCTAssertEqual(one, 1)
        XCTAssertEqual(two, 2)
        // Free again: work is accepted.
        let four = try await pool.run { 4 }
        XCTAssertEqual(four, 4)
        await pool.shutdown()
    }

    func testPoolWithNoQueueRunsOnlyAsManyAsThreads() async throws {
        let pool = HashingThreadPool(threads: 2, queueCapacity: 0)
        let gate = DispatchSemaphore(value: 0)
        let started = (Latch(), Latch())
        var tasks: [Task<Int, any Error>] = []
        for index in 0..<2 {
            tasks.append(
                Task {
                    try await pool.run { () -> Int in
                        index == 0 ? started.0.open() : started.1.open()
                        _ = gate.wait(timeout: .now() + 30)
                        return index
                    }
                })
        }
        await started.0.wait()
        await started.1.wait()
        await assertOverloaded { try await pool.run { -1 } }
        gate.signal()
        gate.signal()
        var results: [Int] = []
        for task in tasks { results.append(try await task.value) }
        XCTAssertEqual(results, [0, 1])
        await pool.shutdown()
    }

    /// One caller after another never overloads a pool whose thread is
    /// free: a job's slot must be free once its caller has the result.
    func testSequentialCallersAreNeverOverloaded() async throws {
        let pool = HashingThreadPool(threads: 1, queueCapacity: 0)
        var overloaded = 0
        for index in 0..<2000 {
            do {
                let value = try await pool.run { index }
                XCTAssertEqual(value, index)
            } catch let error as DomainError where error.reason == "OVERLOADED" {
                overloaded += 1
            }
        }
        XCTAssertEqual(overloaded, 0, "OVERLOADED answers to 2,000 calls made one after another")
        await pool.shutdown()
    }

    func testPoolPassesErrorsThrough() async throws {
        struct Boom: Error, Equatable {}
        let pool = HashingThreadPool(threads: 1, queueCapacity: 1)
        do {
            _ = try await pool.run { () throws -> Int in throw Boom() }
            XCTFail("expected Boom")
        } catch {
            XCTAssertEqual(error as? Boom, Boom())
        }
        XCTAssertEqual(pool.heldJobs, 0, "a failed job frees its slot")
        let value = try await pool.run { 7 }
        XCTAssertEqual(value, 7)
        await pool.shutdown()
    }

    func testShutDownPoolRefusesWork() async throws {
        let pool = HashingThreadPool(threads: 1, queueCapacity: 4)
        _ = try await pool.run { 1 }
        await pool.shutdown()
        await assertOverloaded { try await pool.run { 2 } }
        XCTAssertEqual(pool.heldJobs, 0)
    }

    #if os(Linux)
    /// Hashing yields the CPU to the event loops.
    func testJobsRunAtLowerPriority() async throws {
        let pool = HashingThreadPool(threads: 1, queueCapacity: 0)
        let niceness = try await pool.run { getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) }
        XCTAssertEqual(niceness, HashingThreadPool.niceness)
        XCTAssertNotEqual(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0), HashingThreadPool.niceness,
            "only the pool's threads are lowered")
        await pool.shutdown()
    }
    #endif

    // MARK: Real hashes

    func testHasherRefusesAtOnceWhileItsOnlyThreadHashes() async throws {
        let pool = HashingThreadPool(threads: 1, queueCapacity: 0)
        var configuration = HashingConfiguration()
        configuration.parameters = Self.slow
        let hasher = try PasswordHasher(configuration: configuration, executor: pool)
        let cheap = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
        let phc = try Argon2id.hash(password: Array("cheap-password-1".utf8), parameters: cheap)
        let finished = Latch()
        let first = Task {
            let result = try await hasher.hash(Array("first-password-1".utf8))
            finished.open()
            return result
        }
        await waitUntilHeld(pool, 1)

        await assertOverloaded { try await hasher.hash(Array("second-password".utf8)) }
        await assertOverloaded { try await hasher.verify(Array("cheap-password-1".utf8), against: phc) }
        await assertOverloaded { try await hasher.verifyDecoy(Array("cheap-password-1".utf8)) }
        XCTAssertFalse(finished.isOpen, "the refusals came while the first hash still ran")

        let slowHash = try await first.value
        XCTAssertTrue(Argon2id.verify(password: Array("first-password-1".utf8), phc: slowHash))
        let verified = try await hasher.verify(Array("cheap-password-1".utf8), against: phc)
        XCTAssertTrue(verified, "accepted again once the thread is free")
        await pool.shutdown()
    }
}
