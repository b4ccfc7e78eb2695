import Foundation
import Logging
import MoatClient
import MoatCore
import MoatProto
import MoatRPC
import MoatStore
import Synchronization
import XCTest

@testable import MoatServer

struct SlowService: RPCService {
    static let sleep = MethodDescriptor(service: "moat.test.Slow", method: "Sleep", access: .public)
    /// Calls that reached the handler.
    let started = StartedCalls()

    var methods: [ServerMethod] {
        let started = started
        return [
            ServerMethod(descriptor: Self.sleep) { payload, _ in
                started.add()
                // real time: the call must still run when a real SIGTERM
                // arrives, whose handling has no outside sign to await.
                try await Task.sleep(for: .milliseconds(500))
                return payload
            }
        ]
    }
}

/// Counts calls that started, so a test waits for them instead of
/// sleeping or polling.
final class StartedCalls: Sendable {
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

final class DaemonTests: XCTestCase {
    private func makeDaemon(slow: SlowService = SlowService()) async throws -> (MoatDaemon, String) {
        let directory = NSTemporaryDirectory() + "moatd-" + UUID().uuidString.prefix(8)
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory + "/data"
        let daemon = try await MoatDaemon.open(
            configuration: configuration, logger: Logger(label: "test"), extraServices: [slow])
        return (daemon, directory)
    }

    func testAnExtraServiceCannotTakeOverAMoatPath() async throws {
        // Validate and Health are replaced by their fast-path entries on
        // purpose (Router.replace); anything else claiming a path is refused.
        struct Impostor: RPCService {
            var methods: [ServerMethod] {
                [ServerMethod(descriptor: Moat_V1_Sessions.Method.validate) { _, _ in Data() }]
            }
        }
        let directory = NSTemporaryDirectory() + "moatd-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory + "/data"
        do {
            _ = try await MoatDaemon.open(configuration: configuration, logger: Logger(label: "test"), extraServices: [Impostor()])
            XCTFail("a second Validate was registered")
        } catch let error as Router.RegistrationError {
            XCTAssertEqual(error, .duplicate(path: Moat_V1_Sessions.Method.validate.path))
        }
    }

    func testCreatesTheDataDirectoryPrivately() async throws {
        let (daemon, directory) = try await makeDaemon()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let attributes = try FileManager.default.attributesOfItem(atPath: daemon.configuration.dataDirectory)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o750)
    }

    func testRefusesAWorldWritableDataDirectory() async throws {
        let directory = NSTemporaryDirectory() + "moatd-open-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        chmod(directory, 0o777)
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory
        do {
            _ = try await MoatDaemon.open(configuration: configuration, logger: Logger(label: "test"))
            XCTFail("started on a world-writable data directory")
        } catch {
            XCTAssertTrue("\(error)".contains("writable by others"), "\(error)")
        }
    }

    func testSIGTERMCompletesCallsInFlightAndRemovesTheSocket() async throws {
        let slow = SlowService()
        let (daemon, directory) = try await makeDaemon(slow: slow)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await daemon.server.start()
        let running = Task { try await daemon.run() }
        let client = MoatClient(socketPath: daemon.configuration.socketPath)
        let status = try await client.health.check().status
        XCTAssertEqual(status, .serving)

        let calls = (1...5).map { index in
            Task { try await client.call(SlowService.sleep, payload: Data([UInt8(index)]), options: CallOptions()) }
        }
        await slow.started.wait(for: calls.count)
        // A real SIGTERM to this process; the daemon's ServiceGroup handles it.
        kill(getpid(), SIGTERM)
        for (index, call) in calls.enumerated() {
            let answer = try await call.value
            XCTAssertEqual(answer, Data([UInt8(index + 1)]), "call \(index + 1) completed")
        }
        try await running.value
        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.configuration.socketPath))
        do {
            _ = try await client.health.check()
            XCTFail("answered after shutdown")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .unavailable)
        }
        await client.close()
    }

    func testHealthReportsVersionAndUptime() async throws {
        let state = ServingState()
        let service = HealthService(version: "9.9.9", state: state)
        let context = RequestContext(
            requestID: 1, method: Moat_V1_Health.Method.check,
            caller: Caller(credentials: PeerCredentials(uid: 0, gid: 0, pid: 1), isAdmin: true), deadline: .now + .seconds(1))
        var response = try await service.check(request: .init(), context: context)
        XCTAssertEqual(response.status, .serving)
        XCTAssertEqual(response.version, "9.9.9")
        state.stopServing()
        response = try await service.check(request: .init(), context: context)
        XCTAssertEqual(response.status, .notServing)
    }

    /// Health tells whether the store answers, while the daemon keeps
    /// serving: ready with no reason, then unavailable with the store's
    /// reason (the state change reported once), then ready again.
    func testHealthReportsTheStoreReadiness() async throws {
        let state = ServingState()
        let service = HealthService(version: "9.9.9", state: state)
        let context = RequestContext(
            requestID: 1, method: Moat_V1_Health.Method.check,
            caller: Caller(credentials: PeerCredentials(uid: 0, gid: 0, pid: 1), isAdmin: true), deadline: .now + .seconds(1))
        var response = try await service.check(request: .init(), context: context)
        XCTAssertEqual(response.store, .storeReady)
        XCTAssertEqual(response.storeReason, "")
        XCTAssertTrue(state.store.recordUnavailable(reason: StoreError.Reason.unavailable.rawValue))
        XCTAssertFalse(state.store.recordUnavailable(reason: StoreError.Reason.unavailable.rawValue))
        response = try await service.check(request: .init(), context: context)
        XCTAssertEqual(response.status, .serving, "cached Validates are still served")
        XCTAssertEqual(response.store, .storeUnavailable)
        XCTAssertEqual(response.storeReason, "STORE_UNAVAILABLE")
        XCTAssertTrue(state.store.recordReady())
        XCTAssertFalse(state.store.recordReady())
        response = try await service.check(request: .init(), context: context)
        XCTAssertEqual(response.store, .storeReady)
        XCTAssertEqual(response.storeReason, "")
        XCTAssertEqual(response.storeUnavailableSeconds, 0)
    }

    /// Health tells whether a shared store's instance trusts its caches:
    /// never fenced without a fence (SQLite); fenced before the first
    /// confirmation, current after one, fenced again once the bound passed
    /// with no newer one (a paused or partitioned instance), and after a lapse.
    func testHealthReportsTheCacheFence() async throws {
        let context = RequestContext(
            requestID: 1, method: Moat_V1_Health.Method.check,
            caller: Caller(credentials: PeerCredentials(uid: 0, gid: 0, pid: 1), isAdmin: true), deadline: .now + .seconds(1))
        var response = try await HealthService(state: ServingState()).check(request: .init(), context: context)
        XCTAssertFalse(response.cachesFenced)
        XCTAssertEqual(response.fenceAgeMs, 0)

        let fence = CacheFence(bound: .milliseconds(200))
        let service = HealthService(state: ServingState(fence: fence))
        response = try await service.check(request: .init(), context: context)
        XCTAssertTrue(response.cachesFenced, "never confirmed")
        XCTAssertEqual(response.fenceAgeMs, 0)
        fence.confirm(asOf: CacheFence.now())
        response = try await service.check(request: .init(), context: context)
        XCTAssertFalse(response.cachesFenced)
        XCTAssertLessThan(response.fenceAgeMs, 200)
        // An old confirmation, as a paused instance has when it wakes.
        fence.lapse()
        fence.confirm(asOf: CacheFence.now() - 1_000_000_000)
        response = try await service.check(request: .init(), context: context)
        XCTAssertTrue(response.cachesFenced)
        XCTAssertGreaterThanOrEqual(response.fenceAgeMs, 1000)
        fence.lapse()
        response = try await service.check(request: .init(), context: context)
        XCTAssertTrue(response.cachesFenced)
    }
}
