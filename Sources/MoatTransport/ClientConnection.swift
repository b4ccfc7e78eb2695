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
        var continuation: CheckedContinuation<Data, any Error>
        var channel: ObjectIdentifier
        var timer: Scheduled<Void>?
    }

    private struct State {
        var channel: (any Channel)?
        var connecting: EventLoopFuture<any Channel>?
        var nextID: UInt64 = 1
        var pending: [UInt64: Pending] = [:]
        var closed = false
    }

    /// The settings this connection was made with.
    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let state = Mutex(State())

    /// Creates a client. It connects on the first call.
    public init(
        configuration: Configuration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.group = eventLoopGroup
    }

    /// Closes the connection. Calls in flight fail with CANCELLED; later calls
    /// fail with UNAVAILABLE.
    public func close() async {
        let (channel, pending) = state.withLock { state -> ((any Channel)?, [Pending]) in
            state.closed = true
            let pending = Array(state.pending.values)
            state.pending.removeAll()
            defer { state.channel = nil }
            return (state.channel, pending)
        }
        for call in pending {
            call.timer?.cancel()
            call.continuation.resume(
                throwing: RPCError(code: .cancelled, message: "client closed", reason: .clientClosed))
        }
        try? await channel?.close()
    }

    public func call(_ method: MethodDescriptor, payload: Data, options: CallOptions) async throws -> Data {
        let channel = try await connectedChannel()
        let timeout = options.timeout ?? configuration.defaultTimeout
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID &+= 1 }
            if state.nextID == 0 { state.nextID = 1 }
            return state.nextID
        }

        var request = Moat_Rpc_V1_Request()
        request.id = id
        request.method = method.path
        request.tenant = options.tenant
        request.authorization = options.authorization
        request.metadata = options.metadata
        request.payload = payload
        if let requested = options.timeout {
            let milliseconds = max(1, requested.nanoseconds / 1_000_000)
            request.timeoutMs = UInt32(clamping: milliseconds)
        }
        let bytes: [UInt8] = try request.serializedBytes()
        guard bytes.count <= configuration.maxFrameSize else {
            throw RPCError(
                code: .resourceExhausted,
                message: "request of \(bytes.count) bytes is over the \(configuration.maxFrameSize)-byte frame limit",
                reason: RPCError.Reason.frameTooLarge)
        }
        var frame = channel.allocator.buffer(capacity: 4 + bytes.count)
        frame.writeFrame(bytes)

        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Data, any Error>) in
                // The server enforces the deadline; this guard (a little
                // later) only protects against a daemon that stopped answering.
                let timer = channel.eventLoop.scheduleTask(in: (timeout + .milliseconds(500)).timeAmount) {
                    self.fail(
                        id: id,
                        RPCError(
                            code: .deadlineExceeded, message: "no answer within \(timeout)",
                            reason: RPCError.Reason.deadlineExceeded))
                }
                state.withLock {
                    $0.pending[id] = Pending(
                        continuation: continuation, channel: ObjectIdentifier(channel), timer: timer)
                }
                if Task.isCancelled {
                    fail(id: id, RPCError(code: .cancelled, message: "the call was cancelled", reason: .cancelled))
                    return
                }
                channel.writeAndFlush(frame).whenFailure { error in
                    self.fail(
                        id: id,
                        RPCError(
                            code: .unavailable, message: "connection lost while sending",
                            reason: RPCError.Reason.connectionClosed, cause: error))
                }
            }
        } onCancel: {
            fail(id: id, RPCError(code: .cancelled, message: "the call was cancelled", reason: .cancelled))
        }
    }

    // MARK: Connection

    private func connectedChannel() async throws -> any Channel {
        let future = try state.withLock { state -> EventLoopFuture<any Channel> in
            guard !state.closed else {
                throw RPCError(code: .unavailable, message: "client is closed", reason: .clientClosed)
            }
            if let channel = state.channel, channel.isActive {
                return channel.eventLoop.makeSucceededFuture(channel)
            }
            if let connecting = state.connecting { return connecting }
            let connecting = makeConnection()
            state.connecting = connecting
            return connecting
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

    fileprivate func received(_ response: Moat_Rpc_V1_Response, on channel: any Channel) {
        if response.id == 0 {
            // A connection-level error: the daemon closes the connection.
            failAll(on: channel, RPCError(response.status))
            return
        }
        guard let call = state.withLock({ $0.pending.removeValue(forKey: response.id) }) else { return }
        call.timer?.cancel()
        if response.status.code == .ok {
            call.continuation.resume(returning: response.payload)
        } else {
            call.continuation.resume(throwing: RPCError(response.status))
        }
    }

    fileprivate func failAll(on channel: any Channel, _ error: RPCError) {
        let id = ObjectIdentifier(channel)
        let calls = state.withLock { state -> [Pending] in
            if let current = state.channel, ObjectIdentifier(current) == id { state.channel = nil }
            let failing = state.pending.filter { $0.value.channel == id }
            for key in failing.keys { state.pending.removeValue(forKey: key) }
            return Array(failing.values)
        }
        for call in calls {
            call.timer?.cancel()
            call.continuation.resume(throwing: error)
        }
    }

    private func fail(id: UInt64, _ error: RPCError) {
        guard let call = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
        call.timer?.cancel()
        call.continuation.resume(throwing: error)
    }
}

/// Reads response frames and hands them to the connection.
final class ClientResponseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let connection: ClientConnection

    init(connection: ClientConnection) { self.connection = connection }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let response = try? Moat_Rpc_V1_Response(serializedBytes: Data(frame.readableBytesView)) else {
            connection.failAll(
                on: context.channel,
                RPCError(
                    code: .internal, message: "the daemon sent an undecodable frame",
                    reason: RPCError.Reason.malformedFrame))
            context.close(promise: nil)
            return
        }
        connection.received(response, on: context.channel)
    }

    func channelInactive(context: ChannelHandlerContext) {
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
