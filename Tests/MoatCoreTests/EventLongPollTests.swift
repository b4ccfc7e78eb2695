import XCTest

@testable import MoatCore

/// Long polls: woken by a committed event, empty after the wait, ended by
/// cancellation and shutdown, never leaving a waiter behind. Bounds are
/// generous (these check behaviour; moat-bench measures latency).
final class EventLongPollTests: XCTestCase {
    static let tenant = TenantID("tn_" + String(repeating: "a", count: 26))!

    func makeStream() throws -> (World, EventStream) {
        let world = try World()
        return (world, EventStream(store: world.store, signal: world.store.eventSignal, clock: world.clock))
    }

    func append(_ world: World, _ event: DomainEvent = .tenantPolicyUpdated(tenantID: tenant)) async throws {
        try await world.store.write { [now = world.clock.now()] in try $0.append(event, tenant: Self.tenant, at: now) }
    }

    /// Waits (bounded) until `count` polls are suspended on the signal.
    func waitForWaiters(_ signal: EventSignal, _ count: Int = 1) async throws {
        let waiting = await signal.untilWaiting(count)
        XCTAssertTrue(waiting, "the poll is waiting")
        XCTAssertEqual(signal.waiterCount, count, "the poll is waiting")
    }

    func testAWaitingPollReturnsWhenAnEventCommits() async throws {
        let (world, stream) = try makeStream()
        let started = ContinuousClock.now
        let poll = Task { try await stream.poll(consumer: "mail", waitMilliseconds: 20_000) }
        try await waitForWaiters(world.store.eventSignal)
        try await append(world)
        let batch = try await poll.value
        XCTAssertEqual(batch.events.map(\.sequence), [1])
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5), "woken, not timed out")
        XCTAssertEqual(world.store.eventSignal.waiterCount, 0)
    }

    func testAWriteWithoutEventsDoesNotWakeThePoll() async throws {
        let (world, stream) = try makeStream()
        let before = world.store.eventSignal.generation
        _ = try await world.makeTenant()
        XCTAssertEqual(world.store.eventSignal.generation, before + 1, "one write with events, one signal")
        _ = try await stream.poll(consumer: "mail")
        _ = try await stream.ack(consumer: "mail", sequence: 1)
        XCTAssertEqual(world.store.eventSignal.generation, before + 1, "consumer writes append no event")
        await assertDomainError(.alreadyExists, "SLUG_TAKEN") { try await world.makeTenant() }
        XCTAssertEqual(world.store.eventSignal.generation, before + 1, "a failed write signals nothing")
    }

    func testFilteredOutEventsDoNotEndTheWait() async throws {
        let (world, stream) = try makeStream()
        let poll = Task {
            try await stream.poll(consumer: "mail", waitMilliseconds: 20_000, typePrefix: "password.")
        }
        try await waitForWaiters(world.store.eventSignal)
        try await append(world)  // tenant.policy_updated: filtered out
        try await waitForWaiters(world.store.eventSignal)  // waiting again
        let user = UserID("us_" + String(repeating: "b", count: 26))!
        try await append(world, .passwordReset(userID: user, email: "a@b.test", revokedSessions: 0))
        let batch = try await poll.value
        XCTAssertEqual(batch.events.map(\.type), ["password.reset"])
        XCTAssertEqual(batch.lastSequenceScanned, 2)
    }

    func testAPollReturnsEmptyAfterItsWait() async throws {
        let (world, stream) = try makeStream()
        let batch = try await stream.poll(consumer: "mail", waitMilliseconds: 50)
        XCTAssertEqual(batch.events, [])
        XCTAssertEqual(batch.lastSequenceScanned, 0)
        XCTAssertEqual(world.store.eventSignal.waiterCount, 0)
    }

    func testCancellationEndsTheWait() async throws {
        let (world, stream) = try makeStream()
        let poll = Task { try await stream.poll(consumer: "mail", waitMilliseconds: 30_000) }
        try await waitForWaiters(world.store.eventSignal)
        poll.cancel()
        let batch = try await poll.value
        XCTAssertEqual(batch.events, [])
        XCTAssertEqual(world.store.eventSignal.waiterCount, 0)
    }

    func testShutdownWakesWaitingPollsAndLaterOnesAnswerAtOnce() async throws {
        let (world, stream) = try makeStream()
        let polls = (0..<3).map { index in
            Task { try await stream.poll(consumer: "c\(index)", waitMilliseconds: 30_000) }
        }
        try await waitForWaiters(world.store.eventSignal, 3)
        stream.shutDown()
        for poll in polls {
            let batch = try await poll.value
            XCTAssertEqual(batch.events, [])
        }
        XCTAssertEqual(world.store.eventSignal.waiterCount, 0)
        let started = ContinuousClock.now
        let later = try await stream.poll(consumer: "c0", waitMilliseconds: 30_000)
        XCTAssertEqual(later.events, [])
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
        // Events already there are still returned while draining.
        try await append(world)
        let draining = try await stream.poll(consumer: "c0", waitMilliseconds: 30_000)
        XCTAssertEqual(draining.events.count, 1)
    }
}

/// The signal on its own.
final class EventSignalTests: XCTestCase {
    func testASignalSinceTheObservedGenerationAnswersAtOnce() async {
        let signal = EventSignal()
        let observed = signal.generation
        signal.signal()
        let wake = await signal.wait(since: observed, timeout: .seconds(30))
        XCTAssertEqual(wake, .signalled)
        XCTAssertEqual(signal.waiterCount, 0)
    }

    func testTimeoutAndZeroTimeout() async {
        let signal = EventSignal()
        let zero = await signal.wait(since: signal.generation, timeout: .zero)
        XCTAssertEqual(zero, .timedOut)
        let short = await signal.wait(since: signal.generation, timeout: .milliseconds(20))
        XCTAssertEqual(short, .timedOut)
        XCTAssertEqual(signal.waiterCount, 0)
    }

    func testEveryWaiterIsWokenOnceAndRemoved() async throws {
        let signal = EventSignal()
        let observed = signal.generation
        let waits = (0..<50).map { _ in Task { await signal.wait(since: observed, timeout: .seconds(30)) } }
        let waiting = await signal.untilWaiting(50)
        XCTAssertTrue(waiting)
        XCTAssertEqual(signal.waiterCount, 50)
        signal.signal()
        for wait in waits {
            let wake = await wait.value
            XCTAssertEqual(wake, .signalled)
        }
        XCTAssertEqual(signal.waiterCount, 0)
    }

    func testUntilWaitingCountsSuspendedWaits() async {
        let signal = EventSignal()
        let now = await signal.untilWaiting(0)
        XCTAssertTrue(now, "no waits needed")
        let nobody = await signal.untilWaiting(1, timeout: .milliseconds(20))
        XCTAssertFalse(nobody, "nobody waits: the timeout answers")
        let wait = Task { await signal.wait(since: signal.generation, timeout: .seconds(30)) }
        let one = await signal.untilWaiting(1)
        XCTAssertTrue(one)
        signal.signal()
        let wake = await wait.value
        XCTAssertEqual(wake, .signalled)
        XCTAssertEqual(signal.waiterCount, 0)
    }

    func testCancelledBeforeWaitingAnswersCancelled() async {
        let signal = EventSignal()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await signal.wait(since: signal.generation, timeout: .seconds(30))
        }
        let wake = await task.value
        XCTAssertEqual(wake, .cancelled)
        XCTAssertEqual(signal.waiterCount, 0)
    }

    func testManyCancellationsLeakNothing() async throws {
        let signal = EventSignal()
        let observed = signal.generation
        // Cancelled once registered: all 40 are waiting when cancelled.
        let registered = (0..<40).map { _ in Task { await signal.wait(since: observed, timeout: .seconds(30)) } }
        let waiting = await signal.untilWaiting(40)
        XCTAssertTrue(waiting)
        for wait in registered { wait.cancel() }
        // Cancelled before waiting: the task is cancelled when it calls wait.
        let early = (0..<30).map { _ in
            Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return await signal.wait(since: observed, timeout: .seconds(30))
            }
        }
        // Cancelled at once: each while it registers or once it is registered.
        let racing = (0..<30).map { _ in Task { await signal.wait(since: observed, timeout: .seconds(30)) } }
        for wait in racing { wait.cancel() }
        for wait in registered + early + racing {
            let wake = await wait.value
            XCTAssertEqual(wake, .cancelled)
        }
        XCTAssertEqual(signal.waiterCount, 0)
    }

    func testShutdownWakesAndStaysShut() async throws {
        let signal = EventSignal()
        let observed = signal.generation
        let wait = Task { await signal.wait(since: observed, timeout: .seconds(30)) }
        let waiting = await signal.untilWaiting(1)
        XCTAssertTrue(waiting)
        signal.shutDown()
        let wake = await wait.value
        XCTAssertEqual(wake, .shutDown)
        let later = await signal.wait(since: signal.generation, timeout: .seconds(30))
        XCTAssertEqual(later, .shutDown)
        XCTAssertTrue(signal.isShutDown)
        XCTAssertEqual(signal.waiterCount, 0)
    }
}
