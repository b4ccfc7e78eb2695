import Foundation
import Logging
import MoatClient
import MoatCore
import MoatServer
import Synchronization
import XCTest

/// Slow and echo methods for exercising the client, served next to Moat's own.
struct ProbeService: RPCService {
    static let sleep = MethodDescriptor(service: "moat.test.Probe", method: "Sleep", access: .public)
    static let echo = MethodDescriptor(service: "moat.test.Probe", method: "Echo", access: .public)
    /// Sleep calls that reached the handler.
    let sleeping = SleepingCalls()

    var methods: [ServerMethod] {
        let sleeping = sleeping
        return [
            ServerMethod(descriptor: Self.sleep) { payload, _ in
                sleeping.add()
                let milliseconds = payload.first.map(Int.init) ?? 0
                // real time: a handler busy for a while, past a real per-call
                // deadline or across the start of a drain (which has no
                // outside sign); tests wait on `sleeping`, never on this.
                try await Task.sleep(for: .milliseconds(milliseconds * 10))
                return payload
            },
            ServerMethod(descriptor: Self.echo) { payload, _ in
                if let first = payload.first, first % 3 == 0 { await Task.yield() }
                return payload
            },
        ]
    }
}

/// Counts calls that reached a handler, so a test waits for them instead
/// of sleeping or polling.
final class SleepingCalls: Sendable {
    private struct State {
        var count = 0
        var givenUp = false
        var waiters: [(expected: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    func add() {
        let reached = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.count += 1
            let count = state.count
            defer { state.waiters.removeAll { $0.expected <= count } }
            return state.waiters.filter { $0.expected <= count }.map(\.continuation)
        }
        for waiter in reached { waiter.resume() }
    }

    /// Returns once `expected` calls started (30 s at most, so a broken test
    /// fails its assertions instead of hanging).
    func wait(for expected: Int) async {
        let reached = XCTestExpectation(description: "\(expected) calls started")
        let waiting = Task {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = self.state.withLock { state -> Bool in
                    if state.count >= expected || state.givenUp { return true }
                    state.waiters.append((expected, continuation))
                    return false
                }
                if now { continuation.resume() }
            }
            reached.fulfill()
        }
        if await XCTWaiter.fulfillment(of: [reached], timeout: 30) != .completed {
            let waiters = state.withLock { state in
                state.givenUp = true
                defer { state.waiters = [] }
                return state.waiters.map(\.continuation)
            }
            for waiter in waiters { waiter.resume() }
        }
        await waiting.value
    }
}

/// The system's clock moved `seconds` ahead.
struct AheadClock: WallClock {
    let seconds: Int64

    func now() -> Timestamp { SystemWallClock().now().adding(seconds: seconds) }
}

/// A daemon on a temporary data directory.
final class DaemonFixture: @unchecked Sendable {
    let directory: String
    var daemon: MoatDaemon
    var task: Task<Void, Error>?
    let probe = ProbeService()
    var socketPath: String { daemon.configuration.socketPath }

    init() async throws {
        directory = NSTemporaryDirectory() + "moat-client-" + UUID().uuidString.prefix(8)
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory
        daemon = try await MoatDaemon.open(
            configuration: configuration, logger: Logger(label: "test"), extraServices: [probe])
        try await start()
    }

    func start() async throws {
        try await daemon.server.start()
        let daemon = self.daemon
        task = Task { try await daemon.run() }
    }

    func stop() async throws {
        await daemon.shutdown()
        try await task?.value
    }

    /// Stops the daemon and opens a new one on the same directory, whose
    /// clock runs `ahead` of the system's.
    func restart(clockAhead ahead: Int64 = 0) async throws {
        try await stop()
        daemon = try await MoatDaemon.open(
            configuration: daemon.configuration, logger: Logger(label: "test"), clock: AheadClock(seconds: ahead),
            extraServices: [probe])
        try await start()
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

final class ClientTests: XCTestCase {
    func testHealth() async throws {
        let fixture = try await DaemonFixture()
        let client = MoatClient(socketPath: fixture.socketPath)
        let health = try await client.health.check()
        XCTAssertEqual(health.status, .serving)
        XCTAssertEqual(health.version, MoatVersion.current)
        XCTAssertGreaterThan(health.startedAtUnix, 1_700_000_000)
        await client.close()
        try await fixture.stop()
    }

    func testThousandConcurrentCallsShareOneConnection() async throws {
        let fixture = try await DaemonFixture()
        let client = MoatClient(socketPath: fixture.socketPath)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<1000 {
                group.addTask {
                    let payload = Data("call-\(index)".utf8)
                    let answer = try await client.call(ProbeService.echo, payload: payload, options: CallOptions())
                    XCTAssertEqual(answer, payload)
                }
            }
            try await group.waitForAll()
        }
        XCTAssertEqual(fixture.daemon.server.connectionCount, 1)
        await client.close()
        try await fixture.stop()
    }

    func testErrorsCarryCodeMessageAndReason() async throws {
        let fixture = try await DaemonFixture()
        let client = MoatClient(socketPath: fixture.socketPath)
        let missing = MethodDescriptor(service: "moat.v1.Nope", method: "Missing", access: .public)
        do {
            _ = try await client.call(missing, payload: Data(), options: CallOptions())
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .unimplemented)
            XCTAssertEqual(error.reason, "UNKNOWN_METHOD")
            XCTAssertTrue(error.message.contains("/moat.v1.Nope/Missing"))
        }
        // The connection survives the error.
        let status = try await client.health.check().status
        XCTAssertEqual(status, .serving)
        await client.close()
        try await fixture.stop()
    }

    func testPerCallDeadline() async throws {
        let fixture = try await DaemonFixture()
        let client = MoatClient(socketPath: fixture.socketPath)
        let start = ContinuousClock.now
        do {
            // The handler would sleep 2 s.
            _ = try await client.call(ProbeService.sleep, payload: Data([200]), options: CallOptions(timeout: .milliseconds(100)))
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .deadlineExceeded)
        }
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(1))
        await client.close()
        try await fixture.stop()
    }

    func testCancellationEndsTheCall() async throws {
        let fixture = try await DaemonFixture()
        let client = MoatClient(socketPath: fixture.socketPath)
        let call = Task {
            try await client.call(ProbeService.sleep, payload: Data([200]), options: CallOptions())
        }
        await fixture.probe.sleeping.wait(for: 1)
        call.cancel()
        do {
            _ = try await call.value
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .cancelled)
        }
        await client.close()
        try await fixture.stop()
    }

    func testNoDaemonIsUnavailable() async throws {
        let client = MoatClient(socketPath: NSTemporaryDirectory() + "no-such-moat.sock")
        do {
            _ = try await client.health.check()
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .unavailable)
            XCTAssertEqual(error.reason, "NOT_CONNECTED")
        }
    }

    func testReconnectsAfterDaemonRestart() async throws {
        let fixture = try await DaemonFixture()
        let client = MoatClient(socketPath: fixture.socketPath)
        let before = try await client.health.check()
        try await fixture.stop()
        do {
            _ = try await client.health.check()
            XCTFail("answered while the daemon was down")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .unavailable)
        }
        // The new daemon's clock is 2 s ahead, so its start time is later
        // than the first's without waiting for the next second.
        try await fixture.restart(clockAhead: 2)
        let after = try await client.health.check()
        XCTAssertEqual(after.status, .serving)
        XCTAssertGreaterThan(after.startedAtUnix, before.startedAtUnix, "a new daemon answered")
        await client.close()
        try await fixture.stop()
    }

    func testGracefulShutdownLetsACallInFlightFinish() async throws {
        let fixture = try await DaemonFixture()
        let client = MoatClient(socketPath: fixture.socketPath)
        _ = try await client.health.check()
        let call = Task { try await client.call(ProbeService.sleep, payload: Data([100]), options: CallOptions()) }
        await fixture.probe.sleeping.wait(for: 1)
        try await fixture.stop()  // drains: the 1 s call completes first
        let answer = try await call.value
        XCTAssertEqual(answer, Data([100]), "graceful shutdown let the call finish")
        await client.close()
    }
}
