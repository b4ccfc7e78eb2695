import Foundation
import MoatClient
import MoatProto
import MoatTransport
import NIOCore
import NIOPosix
import Synchronization
import XCTest

/// A stand-in daemon on a Unix socket that records requests and answers only
/// when the test says so (or never): for the client's own deadline, late
/// answers, and answers out of order.
final class ScriptedDaemon: Sendable {
    private struct State {
        var requests: [Moat_Rpc_V1_Request] = []
        var connections: [any Channel] = []
        var waiters: [Waiter] = []
    }

    private struct Waiter {
        let id: Int
        let count: Int
        let continuation: CheckedContinuation<Void, Never>
    }

    let socketPath: String
    private let server: any Channel
    private let state: Mutex<State>

    private init(socketPath: String, server: any Channel) {
        self.socketPath = socketPath
        self.server = server
        self.state = Mutex(State())
    }

    static func start() async throws -> ScriptedDaemon {
        let path = NSTemporaryDirectory() + "moat-scripted-\(UUID().uuidString.prefix(8)).sock"
        let box = RecorderBox()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(FrameDecoder(maxFrameSize: 1 << 20)), RequestRecorder(box: box))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        let daemon = ScriptedDaemon(socketPath: path, server: server)
        box.daemon.withLock { $0 = daemon }
        return daemon
    }

    fileprivate func record(_ request: Moat_Rpc_V1_Request, on channel: any Channel) {
        let ready = state.withLock { state -> [Waiter] in
            state.requests.append(request)
            if !state.connections.contains(where: { $0 === channel }) { state.connections.append(channel) }
            let count = state.requests.count
            let ready = state.waiters.filter { $0.count <= count }
            state.waiters.removeAll { $0.count <= count }
            return ready
        }
        for waiter in ready { waiter.continuation.resume() }
    }

    var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Waits (10 s at most) until `count` requests arrived and returns them.
    /// The recorder resumes the wait as the count-th request arrives; the
    /// 10 s guard only ends a wait for requests that never come.
    func requests(atLeast count: Int) async throws -> [Moat_Rpc_V1_Request] {
        let id = Int.random(in: 0..<Int.max)
        let guardTask = Task { [self] in
            // real time: a bound on a wait that fails the test, not an ordering.
            try? await Task.sleep(for: .seconds(10))
            let waiter = self.state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume()
        }
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.requests.count >= count { return true }
                state.waiters.append(Waiter(id: id, count: count, continuation: continuation))
                return false
            }
            if resumeNow { continuation.resume() }
        }
        guardTask.cancel()
        let requests = state.withLock { $0.requests }
        if requests.count < count { XCTFail("only \(requests.count) of \(count) requests arrived") }
        return requests
    }

    /// Sends answers, in the given order, on the latest connection.
    func answer(_ answers: [Moat_Rpc_V1_Response]) async throws {
        guard let channel = state.withLock({ $0.connections.last }) else { throw RPCError(code: .internal, message: "no connection") }
        var buffer = channel.allocator.buffer(capacity: 256)
        for answer in answers { buffer.writeFrame(try answer.serializedBytes() as [UInt8]) }
        try await channel.writeAndFlush(buffer)
    }

    static func ok(_ id: UInt64, _ payload: Data) -> Moat_Rpc_V1_Response {
        .with {
            $0.id = id
            $0.payload = payload
        }
    }

    func stop() async {
        for channel in state.withLock({ $0.connections }) { try? await channel.close() }
        try? await server.close()
        try? FileManager.default.removeItem(atPath: socketPath)
    }
}

private final class RecorderBox: Sendable {
    let daemon = Mutex<ScriptedDaemon?>(nil)
}

private final class RequestRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let box: RecorderBox
    init(box: RecorderBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let request = try? Moat_Rpc_V1_Request(serializedBytes: Data(frame.readableBytesView)) else {
            context.close(promise: nil)
            return
        }
        box.daemon.withLock { $0 }?.record(request, on: context.channel)
    }
}

/// The method the scripted daemon is called with (it answers any).
let echoMethod = MethodDescriptor(service: "moat.test.Probe", method: "Echo", access: .public)

final class ClientConnectionTests: XCTestCase {

    /// The daemon never answers: the client's deadline sweep fails the call
    /// with DEADLINE_EXCEEDED (after the timeout and its grace), and forgets it.
    func testClientDeadlineWhenTheDaemonNeverAnswers() async throws {
        let daemon = try await ScriptedDaemon.start()
        let client = ClientConnection(configuration: .init(socketPath: daemon.socketPath))
        let start = ContinuousClock.now
        do {
            _ = try await client.call(echoMethod, payload: Data([1]), options: CallOptions(timeout: .milliseconds(200)))
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .deadlineExceeded)
            XCTAssertEqual(error.reason, "DEADLINE_EXCEEDED")
        }
        let elapsed = ContinuousClock.now - start
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(700), "the timeout plus the grace")
        XCTAssertLessThan(elapsed, .seconds(3))
        XCTAssertEqual(client.callsInFlight, 0)
        // The timeout travelled to the daemon.
        let requests = try await daemon.requests(atLeast: 1)
        XCTAssertEqual(requests.first?.timeoutMs, 200)
        await client.close()
        await daemon.stop()
    }

    /// Calls with different deadlines on one connection expire in their own
    /// order; the one answered in time succeeds.
    func testDeadlinesOfManyCallsOnOneConnection() async throws {
        let daemon = try await ScriptedDaemon.start()
        let client = ClientConnection(configuration: .init(socketPath: daemon.socketPath))
        let short = Task { try await client.call(echoMethod, payload: Data([1]), options: CallOptions(timeout: .milliseconds(100))) }
        let long = Task { try await client.call(echoMethod, payload: Data([2]), options: CallOptions(timeout: .seconds(30))) }
        let requests = try await daemon.requests(atLeast: 2)
        do {
            _ = try await short.value
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .deadlineExceeded)
        }
        XCTAssertEqual(client.callsInFlight, 1, "the long call is still waiting")
        let longID = try XCTUnwrap(requests.first { $0.payload == Data([2]) }?.id)
        try await daemon.answer([ScriptedDaemon.ok(longID, Data([2]))])
        let answer = try await long.value
        XCTAssertEqual(answer, Data([2]))
        XCTAssertEqual(client.callsInFlight, 0)
        await client.close()
        await daemon.stop()
    }

    /// A cancelled call fails with CANCELLED at once; its late answer is
    /// dropped and the connection keeps serving the next call.
    func testLateAnswerToACancelledCallIsDropped() async throws {
        let daemon = try await ScriptedDaemon.start()
        let client = ClientConnection(configuration: .init(socketPath: daemon.socketPath))
        let cancelled = Task { try await client.call(echoMethod, payload: Data([7]), options: CallOptions()) }
        let first = try await daemon.requests(atLeast: 1)[0]
        cancelled.cancel()
        do {
            _ = try await cancelled.value
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .cancelled)
            XCTAssertEqual(error.reason, "CANCELLED")
        }
        XCTAssertEqual(client.callsInFlight, 0)
        let next = Task { try await client.call(echoMethod, payload: Data([8]), options: CallOptions()) }
        let second = try await daemon.requests(atLeast: 2)[1]
        XCTAssertNotEqual(first.id, second.id)
        // The late answer first, then the next call's.
        try await daemon.answer([ScriptedDaemon.ok(first.id, Data([7])), ScriptedDaemon.ok(second.id, Data([8]))])
        let answer = try await next.value
        XCTAssertEqual(answer, Data([8]))
        XCTAssertEqual(daemon.connectionCount, 1)
        await client.close()
        await daemon.stop()
    }

    /// A task cancelled before its call starts never sends it.
    func testCallOfACancelledTaskIsNotSent() async throws {
        let daemon = try await ScriptedDaemon.start()
        let client = ClientConnection(configuration: .init(socketPath: daemon.socketPath))
        let probe = Task { try await client.call(echoMethod, payload: Data([1]), options: CallOptions()) }
        let probeRequest = try await daemon.requests(atLeast: 1)[0]
        try await daemon.answer([ScriptedDaemon.ok(probeRequest.id, Data([1]))])
        _ = try await probe.value
        let call = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.call(echoMethod, payload: Data([2]), options: CallOptions())
        }
        do {
            _ = try await call.value
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .cancelled)
        }
        // real time: that the cancelled call is never sent is an absence over a window.
        try await Task.sleep(for: .milliseconds(100))
        let requests = try await daemon.requests(atLeast: 1)
        XCTAssertEqual(requests.count, 1, "the cancelled call was not sent")
        await client.close()
        await daemon.stop()
    }

    /// Many calls at once share one connection (their frames batched into few
    /// writes) and each gets its own answer, whatever the order of answers.
    func testManyConcurrentCallsAnsweredOutOfOrder() async throws {
        let daemon = try await ScriptedDaemon.start()
        let client = ClientConnection(configuration: .init(socketPath: daemon.socketPath))
        let count = 500
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    let payload = Data("call-\(index)".utf8)
                    let answer = try await client.call(
                        echoMethod, payload: payload,
                        options: CallOptions(tenant: "acme", metadata: ["request-id": "r\(index)"]))
                    XCTAssertEqual(answer, payload)
                }
            }
            let requests = try await daemon.requests(atLeast: count)
            XCTAssertEqual(Set(requests.map(\.id)).count, count, "ids are unique")
            XCTAssertTrue(requests.allSatisfy { $0.tenant == "acme" && $0.method == "/moat.test.Probe/Echo" })
            for request in requests {
                // Each frame carries its own call's metadata: "r<index>" with payload "call-<index>".
                let index = request.metadata["request-id"]?.dropFirst() ?? "?"
                XCTAssertEqual(String(decoding: request.payload, as: UTF8.self), "call-\(index)")
            }
            try await daemon.answer(requests.reversed().map { ScriptedDaemon.ok($0.id, $0.payload) })
            try await group.waitForAll()
        }
        XCTAssertEqual(daemon.connectionCount, 1)
        XCTAssertEqual(client.callsInFlight, 0)
        await client.close()
        await daemon.stop()
    }

    /// An error answer carries the daemon's code, message, reason and details.
    func testErrorAnswerCarriesTheFullStatus() async throws {
        let daemon = try await ScriptedDaemon.start()
        let client = ClientConnection(configuration: .init(socketPath: daemon.socketPath))
        let call = Task { try await client.call(echoMethod, payload: Data([1]), options: CallOptions()) }
        let request = try await daemon.requests(atLeast: 1)[0]
        try await daemon.answer([
            .with {
                $0.id = request.id
                $0.status.code = .resourceExhausted
                $0.status.message = "slow down"
                $0.status.reason = "RATE_LIMITED"
                $0.status.details = ["retry_after_seconds": "3"]
            }
        ])
        do {
            _ = try await call.value
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .resourceExhausted)
            XCTAssertEqual(error.message, "slow down")
            XCTAssertEqual(error.reason, "RATE_LIMITED")
            XCTAssertEqual(error.details, ["retry_after_seconds": "3"])
        }
        await client.close()
        await daemon.stop()
    }

    /// A request over the frame limit fails locally and sends nothing; the
    /// connection keeps working.
    func testRequestOverTheFrameLimitIsRefused() async throws {
        let daemon = try await ScriptedDaemon.start()
        var configuration = ClientConnection.Configuration(socketPath: daemon.socketPath)
        configuration.maxFrameSize = 1024
        let client = ClientConnection(configuration: configuration)
        do {
            _ = try await client.call(echoMethod, payload: Data(count: 2000), options: CallOptions())
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .resourceExhausted)
            XCTAssertEqual(error.reason, "FRAME_TOO_LARGE")
        }
        XCTAssertEqual(client.callsInFlight, 0)
        let call = Task { try await client.call(echoMethod, payload: Data([5]), options: CallOptions()) }
        let requests = try await daemon.requests(atLeast: 1)
        XCTAssertEqual(requests.count, 1)
        XCTAssertEqual(requests[0].payload, Data([5]))
        try await daemon.answer([ScriptedDaemon.ok(requests[0].id, Data([5]))])
        let answer = try await call.value
        XCTAssertEqual(answer, Data([5]))
        await client.close()
        await daemon.stop()
    }

    /// An undecodable answer fails the calls in flight (INTERNAL,
    /// MALFORMED_FRAME) and the next call connects again.
    func testMalformedAnswerFailsTheConnection() async throws {
        let daemon = try await ScriptedDaemon.start()
        let client = ClientConnection(configuration: .init(socketPath: daemon.socketPath))
        let call = Task { try await client.call(echoMethod, payload: Data([1]), options: CallOptions()) }
        _ = try await daemon.requests(atLeast: 1)
        try await daemon.answerRaw([0x08])  // a tag with no value
        do {
            _ = try await call.value
            XCTFail("succeeded")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .internal)
            XCTAssertEqual(error.reason, "MALFORMED_FRAME")
        }
        let next = Task { try await client.call(echoMethod, payload: Data([2]), options: CallOptions()) }
        let requests = try await daemon.requests(atLeast: 2)
        try await daemon.answer([ScriptedDaemon.ok(requests[1].id, Data([2]))])
        let answer = try await next.value
        XCTAssertEqual(answer, Data([2]))
        XCTAssertEqual(daemon.connectionCount, 2, "a new connection")
        await client.close()
        await daemon.stop()
    }
}

extension ScriptedDaemon {
    /// Sends one frame with the given body on the latest connection.
    func answerRaw(_ body: [UInt8]) async throws {
        guard let channel = state.withLock({ $0.connections.last }) else { throw RPCError(code: .internal, message: "no connection") }
        var buffer = channel.allocator.buffer(capacity: 16)
        buffer.writeFrame(body)
        try await channel.writeAndFlush(buffer)
    }
}
