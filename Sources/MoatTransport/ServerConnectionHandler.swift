import Foundation
public import Logging
public import MoatProto
public import MoatRPC
public import NIOCore

/// Serves one connection: turns frames into calls, runs them, writes their
/// responses as they finish (in any order), and enforces the per-connection
/// limits.
///
/// Everything here runs on the channel's event loop; handlers run as tasks
/// and hop back to the loop to answer.
public final class ServerConnectionHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Sent down the pipeline by the server when it starts to shut down: the
    /// connection refuses new calls, finishes the ones in flight, then closes.
    public struct DrainEvent: Sendable {
        public init() {}
    }

    private struct InFlightCall {
        var task: Task<Void, Never>?
        var timer: Scheduled<Void>?

        func cancel() {
            task?.cancel()
            timer?.cancel()
        }
    }

    private let router: Router
    private let caller: Caller
    private let limits: TransportLimits
    private var logger: Logger

    private var context: ChannelHandlerContext?
    /// Created in `handlerAdded`, when the event loop's clock is at hand.
    private var state: ConnectionStateMachine<ByteBuffer, InFlightCall>
    private var idleTimer: Scheduled<Void>?
    private var frameTimer: Scheduled<Void>?

    /// Creates the handler for a connection from `caller`. Timers and the
    /// idle clock use the channel's event loop (so an `EmbeddedEventLoop`
    /// drives them in tests).
    public init(router: Router, caller: Caller, limits: TransportLimits, logger: Logger) {
        self.router = router
        self.caller = caller
        self.limits = limits
        self.logger = logger
        self.logger[metadataKey: "moat.peer.pid"] = "\(caller.credentials.pid)"
        self.logger[metadataKey: "moat.peer.uid"] = "\(caller.credentials.uid)"
        self.state = ConnectionStateMachine(
            maxInFlight: limits.maxInFlightPerConnection, idleTimeout: limits.idleTimeout.timeAmount, now: .uptimeNanoseconds(0))
    }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduleIdleCheck(at: state.started(now: context.eventLoop.now))
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    private func tearDown() {
        for call in state.tearDown() { call.cancel() }
        idleTimer?.cancel()
        idleTimer = nil
        frameTimer?.cancel()
        frameTimer = nil
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state.frameReceived(unwrapInboundIn(data), now: context.eventLoop.now) {
        case .process(let frame): process(frame: frame, context: context)
        case .none: break
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let progress as FrameProgressEvent:
            switch progress {
            case .partialFrameStarted:
                frameTimer?.cancel()
                frameTimer = context.eventLoop.assumeIsolated().scheduleTask(in: limits.frameTimeout.timeAmount) { [self] in
                    frameTimer = nil
                    protocolError(
                        code: .invalidArgument, reason: RPCError.Reason.frameTimeout,
                        message: "frame not completed within \(limits.frameTimeout)")
                }
            case .partialFrameCompleted:
                frameTimer?.cancel()
                frameTimer = nil
            }
        case is DrainEvent:
            if state.drain() { context.close(promise: nil) }
        case let channelEvent as ChannelEvent where channelEvent == .inputClosed:
            // The client sent everything it will send; answer what is in
            // flight, then close.
            if state.inputEnded() { context.close(promise: nil) }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case FrameDecodingError.frameTooLarge(let length, let limit):
            protocolError(
                code: .resourceExhausted, reason: RPCError.Reason.frameTooLarge,
                message: "frame of \(length) bytes is over the \(limit)-byte limit")
        case FrameDecodingError.truncated(let buffered):
            protocolError(
                code: .invalidArgument, reason: RPCError.Reason.truncatedFrame,
                message: "connection ended inside a frame (\(buffered) bytes buffered)")
        default:
            logger.debug("connection error", metadata: ["moat.error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: Outbound (backpressure)

    public func read(context: ChannelHandlerContext) {
        if state.readRequested() { context.read() }
    }

    // MARK: Calls

    private func process(frame: ByteBuffer, context: ChannelHandlerContext) {
        let request: Moat_Rpc_V1_Request
        do {
            request = try Moat_Rpc_V1_Request(serializedBytes: Data(frame.readableBytesView))
        } catch {
            protocolError(
                code: .invalidArgument, reason: RPCError.Reason.malformedFrame,
                message: "frame is not a moat.rpc.v1.Request")
            return
        }
        let id = request.id
        guard id != 0 else {
            protocolError(
                code: .invalidArgument, reason: RPCError.Reason.invalidRequestID,
                message: "request id 0 is reserved")
            return
        }
        switch state.admit(id: id) {
        case .start:
            break
        case .duplicateID:
            protocolError(
                code: .invalidArgument, reason: RPCError.Reason.duplicateRequestID,
                message: "request id \(id) is already in flight")
            return
        case .refuseDraining:
            respond(
                id: id,
                error: RPCError(
                    code: .unavailable, message: "the server is shutting down",
                    reason: RPCError.Reason.shuttingDown))
            return
        }

        let method: ServerMethod
        do {
            method = try router.resolve(path: request.method, caller: caller, authorization: request.authorization)
        } catch {
            respond(id: id, error: error)
            return
        }

        let timeout = limits.deadline(forTimeoutMilliseconds: request.timeoutMs)
        let rpcContext = RequestContext(
            requestID: id, method: method.descriptor, caller: caller, tenant: request.tenant,
            authorization: request.authorization, metadata: request.metadata,
            deadline: ContinuousClock.now + timeout)
        let payload = request.payload

        // Answer on this thread when the method can (a cache hit): no task,
        // no hop, and the write is flushed with the rest of this read.
        if let fastPath = method.fastPath {
            do {
                if let response = try fastPath(payload, rpcContext) {
                    respond(id: id, payload: response, flush: false)
                    return
                }
            } catch {
                respond(id: id, error: error, flush: false)
                return
            }
        }

        let eventLoop = context.eventLoop
        let timer = eventLoop.assumeIsolated().scheduleTask(in: timeout.timeAmount) { [self] in
            timedOut(id: id, after: timeout)
        }
        state.callStarted(id: id, InFlightCall(task: nil, timer: timer))

        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        if let completionPath = method.completionPath {
            // No task: the answer comes back from wherever the work ran (a
            // store thread) straight onto this event loop.
            completionPath(payload, rpcContext) { result in
                eventLoop.execute { handler.value.finished(id: id, result: result) }
            }
            return
        }
        let task = Task {
            let result: Result<Data, any Error>
            do {
                result = .success(try await method.handler(payload, rpcContext))
            } catch {
                result = .failure(error)
            }
            eventLoop.execute {
                handler.value.finished(id: id, result: result)
            }
        }
        // The call may already have ended (the connection closed).
        state.updateCall(id: id) { $0.task = task }
    }

    private func finished(id: UInt64, result: Result<Data, any Error>) {
        // Absent when the deadline already answered, or the connection closed.
        guard let call = state.callEnded(id: id) else { return }
        call.timer?.cancel()
        switch result {
        case .success(let payload):
            respond(id: id, payload: payload)
        case .failure(let error):
            respond(id: id, error: error)
        }
        slotFreed()
    }

    private func timedOut(id: UInt64, after timeout: Duration) {
        guard let call = state.callEnded(id: id) else { return }
        call.task?.cancel()
        respond(
            id: id,
            error: RPCError(
                code: .deadlineExceeded, message: "no answer within \(timeout)",
                reason: RPCError.Reason.deadlineExceeded))
        slotFreed()
    }

    /// A slot freed: serve queued frames, resume reading, or close.
    private func slotFreed() {
        guard let context else { return }
        while let frame = state.nextQueuedFrame() {
            process(frame: frame, context: context)
        }
        let action = state.resume()
        // Fast-path answers to queued frames were written outside a read
        // cycle: no channelReadComplete will flush them.
        if action.flush { context.flush() }
        if action.read { context.read() }
        if action.close { context.close(promise: nil) }
    }

    // MARK: Responses

    private func respond(id: UInt64, payload: Data, flush: Bool = true) {
        var response = Moat_Rpc_V1_Response()
        response.id = id
        response.status.code = .ok
        response.payload = payload
        write(response, flush: flush)
    }

    private func respond(id: UInt64, error: any Error, flush: Bool = true) {
        // The one point where a thrown error becomes a wire status.
        let rpcError = RPCError(answering: error)
        if let cause = rpcError.cause {
            // Only the cause's type is logged: a description could carry a
            // secret from the request. INTERNAL means moatd failed.
            logger.log(
                level: rpcError.code == .internal ? .error : .debug, "call failed",
                metadata: ["moat.request_id": "\(id)", "moat.error_type": "\(String(reflecting: type(of: cause)))"])
        }
        var response = Moat_Rpc_V1_Response()
        response.id = id
        response.status = Moat_Rpc_V1_Status(rpcError)
        write(response, flush: flush)
    }

    private func write(_ response: Moat_Rpc_V1_Response, flush: Bool = true) {
        guard let context else { return }
        var bytes: [UInt8]
        do {
            bytes = try response.serializedBytes()
        } catch {
            bytes = []
        }
        if bytes.count > limits.maxFrameSize {
            var tooLarge = Moat_Rpc_V1_Response()
            tooLarge.id = response.id
            tooLarge.status = Moat_Rpc_V1_Status(
                RPCError(
                    code: .resourceExhausted, message: "the response is over the frame size limit",
                    reason: RPCError.Reason.responseTooLarge))
            bytes = (try? tooLarge.serializedBytes()) ?? []
        }
        var buffer = context.channel.allocator.buffer(capacity: 4 + bytes.count)
        buffer.writeFrame(bytes)
        if flush {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        } else {
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
        state.wrote(flushed: flush)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if state.readComplete() { context.flush() }
        context.fireChannelReadComplete()
    }

    /// Answers a connection-level error with one response (id 0) and closes.
    private func protocolError(code: Code, reason: RPCError.Reason, message: String) {
        guard let context, let calls = state.protocolError() else { return }
        logger.notice("closing connection", metadata: ["moat.reason": "\(reason.rawValue)"])
        for call in calls { call.cancel() }
        var response = Moat_Rpc_V1_Response()
        response.status = Moat_Rpc_V1_Status(RPCError(code: code, message: message, reason: reason))
        let bytes = (try? response.serializedBytes() as [UInt8]) ?? []
        var buffer = context.channel.allocator.buffer(capacity: 4 + bytes.count)
        buffer.writeFrame(bytes)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    // MARK: Idle

    private func scheduleIdleCheck(at deadline: NIODeadline) {
        guard let context else { return }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            idleTimer = nil
            guard let context = self.context else { return }
            switch state.idleCheck(now: context.eventLoop.now) {
            case .close:
                logger.debug("closing idle connection")
                context.close(promise: nil)
            case .checkAgain(let next):
                scheduleIdleCheck(at: next)
            case .none:
                break
            }
        }
    }
}

extension Duration {
    /// The duration as a NIO `TimeAmount`.
    public var timeAmount: TimeAmount { .nanoseconds(nanoseconds) }
}

extension Moat_Rpc_V1_Status {
    /// The wire status of an error. The cause is not sent.
    public init(_ error: RPCError) {
        self.init()
        code = Moat_Rpc_V1_Code(rawValue: error.code.rawValue) ?? .unknown
        message = error.message
        reason = error.reason
        details = error.details
    }
}

extension RPCError {
    /// The error a wire status describes.
    public init(_ status: Moat_Rpc_V1_Status) {
        self.init(
            code: Code(rawValue: status.code.rawValue), message: status.message, reason: status.reason,
            details: status.details)
    }
}
