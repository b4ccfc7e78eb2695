import Foundation
import Logging
import MoatProto
import MoatRPC
import NIOCore
import NIOEmbedded
import Synchronization
import XCTest

@testable import MoatTransport

/// Opened once; tasks await it instead of polling or sleeping.
final class TestLatch: Sendable {
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

/// The connection handler on a testing channel whose event loop's clock
/// moves only when a test advances it: idle, frame and call deadlines are
/// tested without waiting for real time.
final class ConnectionHandlerTests: XCTestCase {
    static let instant = MethodDescriptor(service: "moat.test.Loop", method: "Instant", access: .public)
    static let held = MethodDescriptor(service: "moat.test.Loop", method: "Held", access: .public)

    /// `Held` runs until `release` opens (or its task is cancelled, which
    /// opens `cancelled`); `Instant` answers on the event loop.
    struct Methods {
        let release = TestLatch()
        let started = TestLatch()
        let cancelled = TestLatch()

        var router: Router {
            get throws {
            let release = release
            let started = started
            let cancelled = cancelled
            return try Router(services: [
                TestService(methods: [
                    ServerMethod(
                        descriptor: ConnectionHandlerTests.instant, fastPath: { payload, _ in payload },
                        handler: { payload, _ in payload }),
                    ServerMethod(descriptor: ConnectionHandlerTests.held) { payload, _ in
                        started.open()
                        await withTaskCancellationHandler {
                            await release.wait()
                        } onCancel: {
                            cancelled.open()
                        }
                        return payload
                    },
                ])
            ])
            }
        }
    }

    private func makeChannel(limits: TransportLimits, methods: Methods) async throws -> NIOAsyncTestingChannel {
        let channel = NIOAsyncTestingChannel()
        let router = try methods.router
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandlers(
                ByteToMessageHandler(FrameDecoder(maxFrameSize: limits.maxFrameSize, reportsProgress: true)),
                ServerConnectionHandler(
                    router: router,
                    caller: Caller(credentials: PeerCredentials(uid: 1000, gid: 1000, pid: 42), isAdmin: false),
                    limits: limits, logger: Logger(label: "test")))
        }.get()
        try await channel.connect(to: try SocketAddress(unixDomainSocketPath: "/moat-test.sock")).get()
        return channel
    }

    private func frame(_ request: Moat_Rpc_V1_Request) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeFrame(try request.serializedBytes() as [UInt8])
        return buffer
    }

    private func response(_ channel: NIOAsyncTestingChannel) async throws -> Moat_Rpc_V1_Response {
        var buffer = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
        let length = try XCTUnwrap(buffer.readInteger(as: UInt32.self))
        let body = try XCTUnwrap(buffer.readBytes(length: Int(length)))
        return try Moat_Rpc_V1_Response(serializedBytes: body)
    }

    func testAnIdleConnectionClosesAfterTheIdleTimeOnTheLoopClock() async throws {
        var limits = TransportLimits()
        limits.idleTimeout = .seconds(300)
        let channel = try await makeChannel(limits: limits, methods: Methods())
        await channel.testingEventLoop.advanceTime(by: .seconds(299))
        XCTAssertTrue(channel.isActive, "not idle long enough yet")
        await channel.testingEventLoop.advanceTime(by: .seconds(1))
        try await channel.closeFuture.get()
        XCTAssertFalse(channel.isActive)
    }

    func testActivityMovesTheIdleDeadline() async throws {
        var limits = TransportLimits()
        limits.idleTimeout = .seconds(300)
        let channel = try await makeChannel(limits: limits, methods: Methods())
        await channel.testingEventLoop.advanceTime(by: .seconds(200))
        try await channel.writeInbound(frame(request(id: 1, method: Self.instant.path, payload: [7])))
        let answer = try await response(channel)
        XCTAssertEqual(answer.id, 1)
        XCTAssertEqual(Array(answer.payload), [7])
        await channel.testingEventLoop.advanceTime(by: .seconds(299))
        XCTAssertTrue(channel.isActive, "idle for 299 s since the request")
        await channel.testingEventLoop.advanceTime(by: .seconds(1))
        try await channel.closeFuture.get()
    }

    func testAPartialFrameTimesOutOnTheLoopClock() async throws {
        var limits = TransportLimits()
        limits.frameTimeout = .seconds(10)
        let channel = try await makeChannel(limits: limits, methods: Methods())
        try await channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 50, 1]))
        await channel.testingEventLoop.advanceTime(by: .milliseconds(9_999))
        let early = try await channel.readOutbound(as: ByteBuffer.self)
        XCTAssertNil(early, "no answer before the frame timeout")
        XCTAssertTrue(channel.isActive)
        await channel.testingEventLoop.advanceTime(by: .milliseconds(1))
        let answer = try await response(channel)
        XCTAssertEqual(answer.id, 0)
        XCTAssertEqual(answer.status.code, .invalidArgument)
        XCTAssertEqual(answer.status.reason, "FRAME_TIMEOUT")
        try await channel.closeFuture.get()
    }

    func testACompletedFrameStopsTheFrameTimer() async throws {
        var limits = TransportLimits()
        limits.frameTimeout = .seconds(10)
        let channel = try await makeChannel(limits: limits, methods: Methods())
        let whole = try frame(request(id: 3, method: Self.instant.path, payload: [1, 2]))
        try await channel.writeInbound(try XCTUnwrap(whole.getSlice(at: 0, length: 5)))
        await channel.testingEventLoop.advanceTime(by: .seconds(9))
        try await channel.writeInbound(try XCTUnwrap(whole.getSlice(at: 5, length: whole.readableBytes - 5)))
        let answer = try await response(channel)
        XCTAssertEqual(answer.id, 3)
        XCTAssertEqual(answer.status.code, .ok)
        await channel.testingEventLoop.advanceTime(by: .seconds(60))
        XCTAssertTrue(channel.isActive, "the timer of the completed frame never fired")
        let extra = try await channel.readOutbound(as: ByteBuffer.self)
        XCTAssertNil(extra)
    }

    func testACallInFlightKeepsTheConnectionFromIdling() async throws {
        var limits = TransportLimits()
        limits.idleTimeout = .seconds(300)
        limits.defaultDeadline = .seconds(3600)
        limits.maxDeadline = .seconds(3600)
        let methods = Methods()
        let channel = try await makeChannel(limits: limits, methods: methods)
        try await channel.writeInbound(frame(request(id: 1, method: Self.held.path, payload: [9])))
        await methods.started.wait()
        await channel.testingEventLoop.advanceTime(by: .seconds(900))
        XCTAssertTrue(channel.isActive, "three idle timeouts passed while the call ran")
        methods.release.open()
        let answer = try await response(channel)
        XCTAssertEqual(answer.id, 1)
        XCTAssertEqual(answer.status.code, .ok)
        // Idle since the request long ago: the next check (a tenth of the
        // timeout later at most) closes it.
        await channel.testingEventLoop.advanceTime(by: .seconds(30))
        try await channel.closeFuture.get()
    }

    func testTheDeadlineAnswersAndCancelsTheHandler() async throws {
        var limits = TransportLimits()
        limits.maxDeadline = .seconds(60)
        let methods = Methods()
        let channel = try await makeChannel(limits: limits, methods: methods)
        try await channel.writeInbound(frame(request(id: 5, method: Self.held.path, timeoutMs: 100)))
        await methods.started.wait()
        await channel.testingEventLoop.advanceTime(by: .milliseconds(99))
        let early = try await channel.readOutbound(as: ByteBuffer.self)
        XCTAssertNil(early)
        await channel.testingEventLoop.advanceTime(by: .milliseconds(1))
        let answer = try await response(channel)
        XCTAssertEqual(answer.id, 5)
        XCTAssertEqual(answer.status.code, .deadlineExceeded)
        XCTAssertEqual(answer.status.reason, "DEADLINE_EXCEEDED")
        await methods.cancelled.wait()
        methods.release.open()
        // The handler's late answer is dropped: the call already ended.
        try await channel.writeInbound(frame(request(id: 6, method: Self.instant.path, payload: [1])))
        let next = try await response(channel)
        XCTAssertEqual(next.id, 6, "the connection lives on; no second answer to call 5")
        XCTAssertTrue(channel.isActive)
    }

    func testDrainFinishesTheCallInFlightRefusesNewOnesThenCloses() async throws {
        var limits = TransportLimits()
        limits.defaultDeadline = .seconds(60)
        let methods = Methods()
        let channel = try await makeChannel(limits: limits, methods: methods)
        try await channel.writeInbound(frame(request(id: 1, method: Self.held.path, payload: [1])))
        await methods.started.wait()
        channel.pipeline.fireUserInboundEventTriggered(ServerConnectionHandler.DrainEvent())
        try await channel.writeInbound(frame(request(id: 2, method: Self.instant.path)))
        let refused = try await response(channel)
        XCTAssertEqual(refused.id, 2)
        XCTAssertEqual(refused.status.code, .unavailable)
        XCTAssertEqual(refused.status.reason, "SHUTTING_DOWN")
        XCTAssertTrue(channel.isActive, "the call in flight is still running")
        methods.release.open()
        let finished = try await response(channel)
        XCTAssertEqual(finished.id, 1)
        XCTAssertEqual(finished.status.code, .ok)
        try await channel.closeFuture.get()
    }
}
