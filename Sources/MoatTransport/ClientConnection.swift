public import Foundation
import MoatProto
public import MoatRPC
public import NIOCore
public import NIOPosix
import Synchronization

/// One multiplexed connection to a Moat daemon, shared by any number of
/// tasks. Calls carry ids; responses are matched by id in whatever order
/// they come. When the connection drops, calls in flight fail with
/// UNAVAILABLE and the next call connects again.
public final class ClientConnection: ClientTransport, Sendable {
    /// Client settings.
    public struct Configuration: Sendable {
        /// The daemon's socket.
        public var socketPath: String
        /// The largest frame accepted from the daemon. Default 1 MiB.
        public var maxFrameSize: Int = 1 << 20
        /// How long to wait for the connection itself. Default 5 s.
        public var connectTimeout: Duration = .seconds(5)
        /// The client-side limit for calls without a timeout, so a hung
        /// daemon cannot hang the caller forever. Default 60 s.
        public var defaultTimeout: Duration = .seconds(60)

        /// Creates a configuration.
        public init(socketPath: String) { self.socketPath = socketPath }
    }

    private struct Pending {
        var continuation: UnsafeContinuation<Data, any Error>
        var channel: ObjectIdentifier
        /// When the client gives up (the call's timeout plus a grace).
        var deadline: NIODeadline
        var timeout: Duration
    }

    /// Frames written by callers and not yet handed to the channel. Callers
    /// append under the state lock; the first one to find nothing scheduled
    /// asks the event loop for one flush, which takes everything queued by
    /// then: under load many calls share one hop and one write.
    private struct Outbox {
        var channel: ObjectIdentifier?
        var buffer: ByteBuffer?
        var flushScheduled = false
    }

    private struct State {
        var channel: (any Channel)?
        var connecting: EventLoopFuture<any Channel>?
        var pending: [UInt64: Pending] = [:]
        var outbox = Outbox()
        var closed = false
    }

    /// How often each connection looks for calls past their deadline: one
    /// sweep per connection instead of a timer per call.
    static let deadlineSweepInterval = TimeAmount.milliseconds(100)
    /// How much longer than its timeout the client waits for an answer (the
    /// daemon enforces the deadline itself; this only guards against a
    /// daemon that stopped answering).
    static let deadlineGrace = Duration.milliseconds(500)

    /// The settings this connection was made with.
    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let state: Mutex<State>
    private let nextID = Atomic<UInt64>(0)

    /// Creates a client. It connects on the first call.
    public init(
        configuration: Configuration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.group = eventLoopGroup
        var initial = State()
        initial.pending.reserveCapacity(64)
        self.state = Mutex(initial)
    }

    /// Calls waiting for an answer (for tests and diagnostics).
    public var callsInFlight: Int { state.withLock { $0.pending.count } }

    /// Closes the connection. Calls in flight fail with CANCELLED; later calls
    /// fail with UNAVAILABLE.
    public func close() async {
        let (channel, pending) = state.withLock { state -> ((any Channel)?, [Pending]) in
            state.closed = true
            let pending = Array(state.pending.values)
            state.pending.removeAll()
            state.outbox = Outbox()
            defer { state.channel = nil }
            return (state.channel, pending)
        }
        for call in pending {
            call.continuation.resume(
                throwing: RPCError(code: .cancelled, message: "client closed", reason: .clientClosed))
        }
        try? await channel?.close()
    }

    public func call(_ method: MethodDescriptor, payload: Data, options: CallOptions) async throws -> Data {
        let channel = try await connectedChannel()
        let drawn = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        // 0 is the connection's own id (connection-level errors).
        let id = drawn != 0 ? drawn : nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let timeout = options.timeout ?? configuration.defaultTimeout
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Data, any Error>) in
                send(
                    id: id, method: method, payload: payload, options: options, timeout: timeout, on: channel,
                    continuation: continuation)
            }
        } onCancel: {
            fail(id: id, RPCError(code: .cancelled, message: "the call was cancelled", reason: .cancelled))
        }
    }

    private enum Queued {
        case flushScheduled
        case needsFlush
        case failed(RPCError)
    }

    /// Registers the call and queues its frame, in one pass under the lock.
    private func send(
        id: UInt64, method: MethodDescriptor, payload: Data, options: CallOptions, timeout: Duration,
        on channel: any Channel, continuation: UnsafeContinuation<Data, any Error>
    ) {
        let deadline = NIODeadline.now() + (timeout + Self.deadlineGrace).timeAmount
        let maxFrameSize = configuration.maxFrameSize
        let queued = state.withLock { state -> Queued in
            // Checked under the lock: a cancellation after this point finds
            // the call registered and fails it.
            if Task.isCancelled {
                return .failed(RPCError(code: .cancelled, message: "the call was cancelled", reason: .cancelled))
            }
            if state.closed {
                return .failed(RPCError(code: .unavailable, message: "client is closed", reason: .clientClosed))
            }
            guard let current = state.channel, current === channel else {
                return .failed(
                    RPCError(
                        code: .unavailable, message: "connection to the daemon closed",
                        reason: RPCError.Reason.connectionClosed))
            }
            let channelID = ObjectIdentifier(channel)
            if state.outbox.channel != channelID { state.outbox = Outbox(channel: channelID) }
            var buffer = state.outbox.buffer.take() ?? channel.allocator.buffer(capacity: 4096)
            do throws(RPCError) {
                try ClientEnvelope.writeRequest(
                    into: &buffer, id: id, method: method.path, options: options, payload: payload,
                    maxFrameSize: maxFrameSize)
            } catch {
                state.outbox.buffer = buffer.readableBytes > 0 ? buffer : nil
                return .failed(error)
            }
            state.outbox.buffer = buffer
            state.pending[id] = Pending(
                continuation: continuation, channel: channelID, deadline: deadline, timeout: timeout)
            if state.outbox.flushScheduled { return .flushScheduled }
            state.outbox.flushScheduled = true
            return .needsFlush
        }
        switch queued {
        case .flushScheduled:
            break
        case .needsFlush:
            if channel.eventLoop.inEventLoop {
                flush(channel)
            } else {
                channel.eventLoop.execute { self.flush(channel) }
            }
        case .failed(let error):
            continuation.resume(throwing: error)
        }
    }

    /// On the channel's event loop: writes everything queued for it.
    private func flush(_ channel: any Channel) {
        let channelID = ObjectIdentifier(channel)
        let frames = state.withLock { state -> ByteBuffer? in
            guard state.outbox.channel == channelID else { return nil }
            state.outbox.flushScheduled = false
            return state.outbox.buffer.take()
        }
        guard let frames else { return }
        channel.writeAndFlush(frames).whenFailure { error in
            self.failAll(
                on: channel,
                RPCError(
                    code: .unavailable, message: "connection lost while sending",
                    reason: RPCError.Reason.connectionClosed, cause: error))
            channel.close(promise: nil)
        }
    }

    // MARK: Connection

    private enum Connected {
        case ready(any Channel)
        case waiting(EventLoopFuture<any Channel>)
    }

    private func connectedChannel() async throws -> any Channel {
        let connected = try state.withLock { state -> Connected in
            guard !state.closed else {
                throw RPCError(code: .unavailable, message: "client is closed", reason: .clientClosed)
            }
            // Connected: no future, no hop to the event loop.
            if let channel = state.channel, channel.isActive { return .ready(channel) }
            if let connecting = state.connecting { return .waiting(connecting) }
            let connecting = makeConnection()
            state.connecting = connecting
            return .waiting(connecting)
        }
        let future: EventLoopFuture<any Channel>
        switch connected {
        case .ready(let channel): return channel
        case .waiting(let connecting): future = connecting
        }
        do {
            return try await future.get()
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(
                code: .unavailable,
                message: "cannot connect to \(configuration.socketPath): \(Self.describe(error))",
                reason: RPCError.Reason.notConnected, cause: error)
        }
    }

    private func makeConnection() -> EventLoopFuture<any Channel> {
        let maxFrameSize = configuration.maxFrameSize
        let future = ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout.timeAmount)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(
                            FrameDecoder(maxFrameSize: maxFrameSize), maximumBufferSize: maxFrameSize + 4),
                        ClientResponseHandler(connection: self))
                }
            }
            .connect(unixDomainSocketPath: configuration.socketPath)
        future.whenComplete { [self] result in
            let stale = state.withLock { state -> (any Channel)? in
                state.connecting = nil
                guard case .success(let channel) = result else { return nil }
                if state.closed { return channel }
                state.channel = channel
                return nil
            }
            stale?.close(promise: nil)
        }
        return future
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? IOError { return error.description }
        return "\(error)"
    }

    // MARK: From the channel

    fileprivate func received(_ answer: ClientEnvelope.Answer, on channel: any Channel) {
        switch answer {
        case .ok(let id, let payload):
            // A late answer to a cancelled or timed-out call finds nothing: dropped.
            guard let call = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
            call.continuation.resume(returning: payload)
        case .failed(0, let error):
            // A connection-level error: the daemon closes the connection.
            failAll(on: channel, error)
        case .failed(let id, let error):
            guard let call = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
            call.continuation.resume(throwing: error)
        }
    }

    fileprivate func failAll(on channel: any Channel, _ error: RPCError) {
        let id = ObjectIdentifier(channel)
        let calls = state.withLock { state -> [Pending] in
            if let current = state.channel, ObjectIdentifier(current) == id { state.channel = nil }
            if state.outbox.channel == id { state.outbox = Outbox() }
            var failing: [Pending] = []
            state.pending = state.pending.filter { _, call in
                guard call.channel == id else { return true }
                failing.append(call)
                return false
            }
            return failing
        }
        for call in calls { call.continuation.resume(throwing: error) }
    }

    /// On the channel's event loop, every ``deadlineSweepInterval``: fails the
    /// calls on `channel` whose deadline passed.
    fileprivate func sweepDeadlines(on channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let now = NIODeadline.now()
        let expired = state.withLock { state -> [Pending] in
            guard state.pending.contains(where: { $0.value.channel == id && $0.value.deadline <= now }) else {
                return []
            }
            var expired: [Pending] = []
            state.pending = state.pending.filter { _, call in
                guard call.channel == id, call.deadline <= now else { return true }
                expired.append(call)
                return false
            }
            return expired
        }
        for call in expired {
            call.continuation.resume(
                throwing: RPCError(
                    code: .deadlineExceeded, message: "no answer within \(call.timeout)",
                    reason: RPCError.Reason.deadlineExceeded))
        }
    }

    private func fail(id: UInt64, _ error: RPCError) {
        guard let call = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
        call.continuation.resume(throwing: error)
    }
}

/// Reads response frames and hands them to the connection; sweeps the
/// connection's deadlines while the channel is active.
final class ClientResponseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let connection: ClientConnection
    private var sweep: RepeatedTask?

    init(connection: ClientConnection) { self.connection = connection }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startSweeping(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startSweeping(context: context)
        context.fireChannelActive()
    }

    private func startSweeping(context: ChannelHandlerContext) {
        guard sweep == nil else { return }
        let channel = context.channel
        let connection = connection
        let interval = ClientConnection.deadlineSweepInterval
        sweep = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            connection.sweepDeadlines(on: channel)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        sweep?.cancel()
        sweep = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let answer: ClientEnvelope.Answer
        do {
            answer = try ClientEnvelope.readResponse(frame)
        } catch {
            connection.failAll(
                on: context.channel,
                RPCError(
                    code: .internal, message: "the daemon sent an undecodable frame",
                    reason: RPCError.Reason.malformedFrame))
            context.close(promise: nil)
            return
        }
        connection.received(answer, on: context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
        sweep?.cancel()
        sweep = nil
        connection.failAll(
            on: context.channel,
            RPCError(
                code: .unavailable, message: "connection to the daemon closed",
                reason: RPCError.Reason.connectionClosed))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let rpcError: RPCError
        if case FrameDecodingError.frameTooLarge(let length, let limit) = error {
            rpcError = RPCError(
                code: .resourceExhausted, message: "the daemon sent a \(length)-byte frame (limit \(limit))",
                reason: RPCError.Reason.frameTooLarge)
        } else {
            rpcError = RPCError(
                code: .unavailable, message: "connection error: \(error)", reason: RPCError.Reason.connectionClosed)
        }
        connection.failAll(on: context.channel, rpcError)
        context.close(promise: nil)
    }
}
