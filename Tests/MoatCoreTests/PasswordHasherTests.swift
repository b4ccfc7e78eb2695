import Dispatch
import MoatCrypto
import Synchronization
import XCTest

@testable import MoatCore

/// A flag set on one thread and polled on another.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// A counter shared between threads.
final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

/// Polls `condition` every millisecond for up to 10 s.
func waitUntil(
    _ what: String, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool
) async throws {
    for _ in 0..<10_000 {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(1))
    }
    XCTFail("timed out waiting until \(what)", file: file, line: line)
}

/// Runs `body`, which must fail at once with RESOURCE_EXHAUSTED OVERLOADED.
func assertOverloaded<T>(
    file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T
) async {
    let error = await assertDomainError(.resourceExhausted, "OVERLOADED", file: file, line: line, body)
    XCTAssertEqual(error?.details["retry_after_seconds"], "1", file: file, line: line)
}

/// Argon2id on its bounded pool: hashes, verifies, and refuses work at once
/// when every thread is busy and the queue is full.
final class PasswordHasherTests: XCTestCase {
    /// Slow enough (tenths of a second) that a test sees a hash running.
    static let slow = Argon2Parameters(memoryKiB: 65536, iterations: 6, parallelism: 1)

    func hasher(_ parameters: Argon2Parameters, workers: Int, queueCapacity: Int) throws -> PasswordHasher {
        var configuration = HashingConfiguration()
        configuration.parameters = parameters
        configuration.workers = workers
        configuration.queueCapacity = queueCapacity
        return try PasswordHasher(configuration: configuration)
    }

    func testHashVerifyDecoyAndRehash() async throws {
        let hasher = try hasher(.cheap, workers: 2, queueCapacity: 4)
        defer { hasher.shutdown() }
        let phc = try await hasher.hash(Array("some-password-1".utf8))
        XCTAssertTrue(phc.hasPrefix("$argon2id$v=19$m=64,t=1,p=1$"))
        let verified = try await hasher.verify(Array("some-password-1".utf8), against: phc)
        XCTAssertTrue(verified)
        let wrong = try await hasher.verify(Array("some-password-2".utf8), against: phc)
        XCTAssertFalse(wrong)
        let garbage = try await hasher.verify(Array("some-password-1".utf8), against: "not a phc")
        XCTAssertFalse(garbage)
        let decoy = try await hasher.verifyDecoy(Array("some-password-1".utf8))
        XCTAssertFalse(decoy)
        let again = try await hasher.hash(Array("some-password-1".utf8))
        XCTAssertNotEqual(again, phc, "fresh salt per hash")

        XCTAssertFalse(hasher.needsRehash(phc))
        XCTAssertTrue(hasher.needsRehash("garbage"))
        let other = try Argon2id.hash(
            password: Array("some-password-1".utf8), parameters: Argon2Parameters(memoryKiB: 128, iterations: 1, parallelism: 1))
        XCTAssertTrue(hasher.needsRehash(other))
    }

    // MARK: The pool, gated by hand

    func testPoolRefusesAtOnceWhenThreadsAndQueueAreFull() async throws {
        let pool = WorkerPool(name: "test-pool", threads: 1, capacity: 1)
        defer { pool.shutdown() }
        let gate = DispatchSemaphore(value: 0)
        let running = Flag()
        let first = Task {
            try await pool.run { () -> Int in
                running.set()
                _ = gate.wait(timeout: .now() + 30)
                return 1
            }
        }
        try await waitUntil("the first job runs") { running.isSet }
        let queued = Flag()
        let second = Task {
            queued.set()
            return try await pool.run { 2 }
        }
        try await waitUntil("the second job is submitted") { queued.isSet }
        try await Task.sleep(for: .milliseconds(50))

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
    }

    func testPoolWithNoQueueRunsOnlyAsManyAsThreads() async throws {
        let pool = WorkerPool(name: "test-pool", threads: 2, capacity: 0)
        defer { pool.shutdown() }
        let gate = DispatchSemaphore(value: 0)
        let running = Counter()
        var tasks: [Task<Int, any Error>] = []
        for index in 0..<2 {
            tasks.append(
                Task {
                    try await pool.run { () -> Int in
                        running.increment()
                        _ = gate.wait(timeout: .now() + 30)
                        return index
                    }
                })
        }
        try await waitUntil("both jobs run") { running.count == 2 }
        await assertOverloaded { try await pool.run { -1 } }
        gate.signal()
        gate.signal()
        var results: [Int] = []
        for task in tasks { results.append(try await task.value) }
        XCTAssertEqual(results, [0, 1])
    }

    /// One caller after another never overloads a pool whose thread is
    /// free: a job's thread must count as free once its caller has the
    /// result.
    func testSequentialCallersAreNeverOverloaded() async throws {
        let pool = WorkerPool(name: "test-pool", threads: 1, capacity: 0)
        defer { pool.shutdown() }
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
    }

    func testPoolPassesErrorsThrough() async throws {
        struct Boom: Error, Equatable {}
        let pool = WorkerPool(name: "test-pool", threads: 1, capacity: 1)
        defer { pool.shutdown() }
        do {
            _ = try await pool.run { () throws -> Int in throw Boom() }
            XCTFail("expected Boom")
        } catch {
            XCTAssertEqual(error as? Boom, Boom())
        }
        let value = try await pool.run { 7 }
        XCTAssertEqual(value, 7)
    }

    // MARK: Real hashes

    func testHasherRefusesAtOnceWhileItsOnlyThreadHashes() async throws {
        let hasher = try hasher(Self.slow, workers: 1, queueCapacity: 0)
        defer { hasher.shutdown() }
        let phc = try Argon2id.hash(password: Array("cheap-password-1".utf8), parameters: .cheap)
        let running = Flag()
        let finished = Flag()
        let first = Task {
            running.set()
            let result = try await hasher.hash(Array("first-password-1".utf8))
            finished.set()
            return result
        }
        try await waitUntil("the first hash is submitted") { running.isSet }
        try await Task.sleep(for: .milliseconds(20))

        await assertOverloaded { try await hasher.hash(Array("second-password".utf8)) }
        await assertOverloaded { try await hasher.verify(Array("cheap-password-1".utf8), against: phc) }
        await assertOverloaded { try await hasher.verifyDecoy(Array("cheap-password-1".utf8)) }
        XCTAssertFalse(finished.isSet, "the refusals came while the first hash still ran")

        let slowHash = try await first.value
        XCTAssertTrue(Argon2id.verify(password: Array("first-password-1".utf8), phc: slowHash))
        try await Task.sleep(for: .milliseconds(50))
        let verified = try await hasher.verify(Array("cheap-password-1".utf8), against: phc)
        XCTAssertTrue(verified, "accepted again once the thread is free")
    }

    /// An overloaded sign-in is neither a failure nor a lockout step.
    func testOverloadedSignInCountsNothing() async throws {
        let world = try World(parameters: Self.slow, workers: 1, queueCapacity: 0)
        let (tenant, owner) = try await world.makeTenant()
        // Let the pool's thread finish its bookkeeping of the owner's hash
        // (see testSequentialCallersAreNeverOverloaded).
        try await Task.sleep(for: .milliseconds(50))
        let before = try await world.snapshot()
        let running = Flag()
        let finished = Flag()
        let busy = Task {
            running.set()
            _ = try await world.hasher.hash(Array("keeps-the-pool-busy".utf8))
            finished.set()
        }
        try await waitUntil("the pool is busy") { running.isSet }
        try await Task.sleep(for: .milliseconds(20))

        for password in [Fixture.ownerPassword, "wrong-password-123"] {
            await assertOverloaded { try await world.signIn(tenant, Fixture.ownerEmail, password) }
        }
        await assertOverloaded { try await world.signIn(tenant, "ghost@acme.test", "wrong-password-123") }
        XCTAssertFalse(finished.isSet, "the refusals came while the pool was busy")
        try await busy.value

        try await assertUnchanged(world, since: before)
        let stored = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored?.failedSignIns, 0)
        XCTAssertEqual(world.accounts.unknownEmails.lockout(tenant: tenant.id, email: "ghost@acme.test"), Lockout())
        try await Task.sleep(for: .milliseconds(50))
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
    }
}
