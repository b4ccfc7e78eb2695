import Logging
import ServiceLifecycle
import Synchronization
import XCTest

@testable import MoatServer

/// A clock that moves only when a test moves it. Tests wait for a sleeper
/// (the service has gone to sleep) instead of waiting for time to pass.
final class ManualSleepClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        var id: Int
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID = 0
        var sleepers: [Sleeper] = []
        var cancelled: Set<Int> = []
        var watchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

        mutating func takeSatisfiedWatchers() -> [CheckedContinuation<Void, Never>] {
            let ready = watchers.filter { $0.count <= sleepers.count }.map(\.continuation)
            watchers.removeAll { $0.count <= sleepers.count }
            return ready
        }
    }

    private let state = Mutex(State())

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }

    /// The deadlines of the sleeps in progress, earliest first.
    var sleeperDeadlines: [Instant] { state.withLock { $0.sleepers.map(\.deadline).sorted() } }

    func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state -> Int in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Outcome { case now, cancelled, waiting([CheckedContinuation<Void, Never>]) }
                let outcome = state.withLock { state -> Outcome in
                    if state.cancelled.remove(id) != nil { return .cancelled }
                    if deadline <= state.now { return .now }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return .waiting(state.takeSatisfiedWatchers())
                }
                switch outcome {
                case .now: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .waiting(let watchers): for watcher in watchers { watcher.resume() }
                }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return state.sleepers.remove(at: index)
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time on and wakes the sleeps that are due.
    func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Returns once at least `count` sleeps are in progress.
    func waitForSleepers(_ count: Int = 1) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                guard state.sleepers.count < count else { return true }
                state.watchers.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }
}

/// Log records kept for a test to read.
final class LogRecords: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])

    var all: [Record] { records.withLock { $0 } }

    func append(_ record: Record) { records.withLock { $0.append(record) } }

    /// A logger that writes here.
    func logger() -> Logger {
        Logger(label: "test") { _ in CapturingLogHandler(records: self) }
    }
}

struct CapturingLogHandler: LogHandler {
    let records: LogRecords
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        for (key, value) in event.metadata ?? [:] { merged[key] = value }
        records.append(
            LogRecords.Record(
                level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
    }
}

/// Runs of a job, awaited one by one.
final class RunLog: Sendable {
    private let runs: AsyncStream<Int>.Continuation
    let stream: AsyncStream<Int>
    private let count = Mutex(0)

    init() {
        (stream, runs) = AsyncStream.makeStream(of: Int.self)
    }

    /// Records a run; returns its number (from 1).
    @discardableResult
    func record() -> Int {
        let number = count.withLock { count -> Int in
            count += 1
            return count
        }
        runs.yield(number)
        return number
    }

    var total: Int { count.withLock { $0 } }
}

/// The periodic-service shape shared by the daemon's background jobs,
/// driven by a manual clock: no test here waits for real time.
final class PeriodicServiceTests: XCTestCase {
    private func start(_ service: PeriodicService) -> (ServiceGroup, Task<Void, any Error>) {
        let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
        return (group, Task { try await group.run() })
    }

    func testRunsAfterTheFirstDelayThenEveryInterval() async throws {
        let clock = ManualSleepClock()
        let runs = RunLog()
        let (group, running) = start(
            PeriodicService(
                name: "job", firstDelay: .seconds(10), interval: .seconds(60), clock: JobClock(clock),
                logger: Logger(label: "test"), work: { runs.record() }))
        var numbers = runs.stream.makeAsyncIterator()

        await clock.waitForSleepers()
        XCTAssertEqual(clock.sleeperDeadlines.map(\.offset), [.seconds(10)])
        clock.advance(by: .seconds(9))
        XCTAssertEqual(clock.sleeperDeadlines.map(\.offset), [.seconds(10)], "not due yet: still asleep")
        XCTAssertEqual(runs.total, 0)
        clock.advance(by: .seconds(1))
        let first = await numbers.next()
        XCTAssertEqual(first, 1)

        await clock.waitForSleepers()
        XCTAssertEqual(clock.sleeperDeadlines.map(\.offset), [.seconds(70)], "then every interval")
        clock.advance(by: .seconds(60))
        let second = await numbers.next()
        XCTAssertEqual(second, 2)

        await clock.waitForSleepers()
        await group.triggerGracefulShutdown()
        try await running.value
        XCTAssertEqual(runs.total, 2)
    }

    func testAFailedRunIsLoggedAndTheNextOneStillRuns() async throws {
        struct Broken: Error, CustomStringConvertible {
            var description: String { "store is broken" }
        }
        let clock = ManualSleepClock()
        let runs = RunLog()
        let records = LogRecords()
        let (group, running) = start(
            PeriodicService(
                name: "job", firstDelay: .seconds(1), interval: .seconds(1), clock: JobClock(clock), logger: records.logger(),
                work: { if runs.record() == 1 { throw Broken() } }))
        var numbers = runs.stream.makeAsyncIterator()

        await clock.waitForSleepers()
        clock.advance(by: .seconds(1))
        _ = await numbers.next()
        await clock.waitForSleepers()
        let warnings = records.all.filter { $0.level == .warning }
        XCTAssertEqual(warnings.count, 1, "\(records.all)")
        XCTAssertEqual(warnings.first?.message, "job failed; retried next interval")
        XCTAssertEqual(warnings.first?.metadata["moat.job"], "job")
        XCTAssertEqual(warnings.first?.metadata["moat.error"], "store is broken")

        clock.advance(by: .seconds(1))
        let second = await numbers.next()
        XCTAssertEqual(second, 2, "the failure did not end the service")
        await clock.waitForSleepers()
        XCTAssertEqual(records.all.filter { $0.level == .warning }.count, 1, "the second run succeeded")

        await group.triggerGracefulShutdown()
        try await running.value
    }

    func testGracefulShutdownWakesTheSleepAndRunsTheShutdownWorkOnce() async throws {
        let clock = ManualSleepClock()
        let runs = RunLog()
        let stops = RunLog()
        let (group, running) = start(
            PeriodicService(
                name: "job", firstDelay: .seconds(3600), interval: .seconds(3600), clock: JobClock(clock),
                logger: Logger(label: "test"), work: { runs.record() }, atShutdown: { stops.record() }))

        await clock.waitForSleepers()
        // No time passes: the hour-long sleep ends because shutdown began.
        await group.triggerGracefulShutdown()
        try await running.value
        XCTAssertEqual(runs.total, 0, "no run after shutdown began")
        XCTAssertEqual(stops.total, 1)
        XCTAssertTrue(clock.sleeperDeadlines.isEmpty)
    }

    func testAFailedShutdownWorkIsLogged() async throws {
        struct Broken: Error {}
        let clock = ManualSleepClock()
        let records = LogRecords()
        let (group, running) = start(
            PeriodicService(
                name: "flush", firstDelay: .seconds(5), interval: .seconds(5), clock: JobClock(clock), logger: records.logger(),
                work: {}, atShutdown: { throw Broken() }))
        await clock.waitForSleepers()
        await group.triggerGracefulShutdown()
        try await running.value
        XCTAssertEqual(records.all.filter { $0.level == .warning }.map(\.message), ["flush failed at shutdown"])
    }
}
