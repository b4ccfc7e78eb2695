import Foundation
import Logging
import MoatRPC
import NIOCore
import NIOHPACK
import NIOHTTP2

/// Serves one gRPC call: one HTTP/2 stream.
///
/// Reads the request HEADERS (`:path`, Moat's metadata, `grpc-timeout`),
/// collects the one length-prefixed request message up to END_STREAM, then
/// dispatches it through the same ``Router`` (access declarations, fast
/// paths, handlers) as the native framing, and answers with HEADERS, one
/// DATA and trailers, or trailers only for an error.
///
/// Runs on the connection's event loop; handlers run as tasks and hop back.
final class GRPCStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private enum State {
        /// Waiting for the request HEADERS.
        case idle
        /// HEADERS read; collecting the message until END_STREAM.
        case receiving(Call)
        /// Dispatched; waiting for the handler.
        case running(task: Task<Void, Never>?, timer: Scheduled<Void>?)
        /// Answered (or abandoned): nothing more is read or written.
        case done
    }

    private struct Call {
        var method: ServerMethod
        var metadata: GRPCMapping.CallMetadata
        var deadline: NIODeadline
        var timeout: Duration
        var body: ByteBuffer?
    }

    private let router: Router
    private let caller: Caller
    private let limits: TransportLimits
    private let connection: GRPCConnectionState
    private let requestID: UInt64
    private let logger: Logger
    private var state = State.idle
    private var context: ChannelHandlerContext?

    init(
        router: Router, caller: Caller, limits: TransportLimits, connection: GRPCConnectionState,
        requestID: UInt64, logger: Logger
    ) {
        self.router = router
        self.caller = caller
        self.limits = limits
        self.connection = connection
        self.requestID = requestID
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandon()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client reset the stream, or the connection went away.
        abandon()
        context.fireChannelInactive()
    }

    private func abandon() {
        if case .running(let task, let timer) = state {
            task?.cancel()
            timer?.cancel()
        }
        state = .done
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Only the type: an HPACK error can quote a header value (a token).
        logger.debug("gRPC stream error", metadata: ["moat.error_type": "\(String(reflecting: type(of: error)))"])
        abandon()
        context.close(promise: nil)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            received(headers: headers.headers, endStream: headers.endStream)
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else {
                fail(RPCError(code: .internal, message: "unexpected file region", reason: RPCError.Reason.internalError))
                return
            }
            received(data: buffer, endStream: data.endStream)
        default:
            break
        }
    }

    private func received(headers: HPACKHeaders, endStream: Bool) {
        guard case .idle = state else {
            // Trailers from the client (allowed by HTTP/2, unused by gRPC)
            // end the request like END_STREAM on DATA.
            if endStream { requestEnded() }
            return
        }
        guard headers.first(name: ":method") == "POST" else {
            answer(httpStatus: "405")
            return
        }
        guard let contentType = headers.first(name: "content-type"),
            contentType == "application/grpc" || contentType.hasPrefix("application/grpc+proto")
                || contentType.hasPrefix("application/grpc;")
        else {
            // The gRPC spec: a non-gRPC content type gets HTTP 415.
            answer(httpStatus: "415")
            return
        }
        let path = headers.first(name: ":path") ?? ""
        let metadata = GRPCMapping.callMetadata(headers.lazy.map { ($0.name, $0.value) })
        if let problem = metadata.problem {
            fail(problem)
            return
        }
        guard !connection.draining else {
            fail(RPCError(code: .unavailable, message: "the server is shutting down", reason: RPCError.Reason.shuttingDown))
            return
        }
        let method: ServerMethod
        do {
            method = try router.resolve(path: path, caller: caller, authorization: metadata.authorization)
        } catch {
            fail(error)
            return
        }
        let timeout = limits.deadline(forTimeoutMilliseconds: metadata.timeoutMilliseconds)
        state = .receiving(
            Call(
                method: method, metadata: metadata, deadline: .now() + timeout.timeAmount, timeout: timeout,
                body: nil))
        if endStream { requestEnded() }
    }

    private func received(data: ByteBuffer, endStream: Bool) {
        guard case .receiving(var call) = state else { return }
        var data = data
        if call.body == nil {
            call.body = data
        } else {
            call.body?.writeBuffer(&data)
        }
        // One message and its 5-byte prefix, no more.
        if let body = call.body, body.readableBytes > limits.maxFrameSize + 5 {
            fail(
                RPCError(
                    code: .resourceExhausted, message: "request message is over the \(limits.maxFrameSize)-byte limit",
                    reason: RPCError.Reason.frameTooLarge))
            return
        }
        state = .receiving(call)
        if endStream { requestEnded() }
    }

    /// END_STREAM: decode the one message and run the call.
    private func requestEnded() {
        guard case .receiving(let call) = state, let context else { return }
        var body = call.body ?? ByteBuffer()
        guard let compressed = body.readInteger(as: UInt8.self), let length = body.readInteger(as: UInt32.self),
            body.readableBytes == Int(length)
        else {
            fail(
                RPCError(
                    code: .invalidArgument,
                    message: "a unary call carries exactly one length-prefixed request message",
                    reason: RPCError.Reason.malformedFrame))
            return
        }
        guard compressed == 0 else {
            // The gRPC spec: a message in an encoding the server does not
            // support is UNIMPLEMENTED (with grpc-accept-encoding).
            fail(
                RPCError(
                    code: .unimplemented, message: "compressed messages are not supported (identity only)",
                    reason: RPCError.Reason.compressionUnsupported))
            return
        }
        let payload = Data(body.readableBytesView)
        let remaining = call.deadline - .now()
        guard remaining > .zero else {
            fail(deadlineError(call.timeout))
            return
        }
        let rpcContext = RequestContext(
            requestID: requestID, method: call.method.descriptor, caller: caller, tenant: call.metadata.tenant,
            authorization: call.metadata.authorization, metadata: call.metadata.metadata,
            deadline: ContinuousClock.now + .nanoseconds(remaining.nanoseconds))

        if let fastPath = call.method.fastPath {
            do {
                if let response = try fastPath(payload, rpcContext) {
                    answer(payload: response)
                    return
                }
            } catch {
                fail(error)
                return
            }
        }

        let eventLoop = context.eventLoop
        let timeout = call.timeout
        let timer = eventLoop.assumeIsolated().scheduleTask(deadline: call.deadline) { [self] in
            timedOut(after: timeout)
        }
        state = .running(task: nil, timer: timer)
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        let method = call.method
        let task = Task {
            let result: Result<Data, any Error>
            do {
                result = .success(try await method.handler(payload, rpcContext))
            } catch {
                result = .failure(error)
            }
            eventLoop.execute {
                handler.value.finished(result)
            }
        }
        if case .running(nil, let timer) = state {
            state = .running(task: task, timer: timer)
        }
    }

    private func finished(_ result: Result<Data, any Error>) {
        guard case .running(_, let timer) = state else { return }
        timer?.cancel()
        switch result {
        case .success(let payload): answer(payload: payload)
        case .failure(let error): fail(error)
        }
    }

    private func timedOut(after timeout: Duration) {
        guard case .running(let task, _) = state else { return }
        task?.cancel()
        fail(deadlineError(timeout))
    }

    private func deadlineError(_ timeout: Duration) -> RPCError {
        RPCError(
            code: .deadlineExceeded, message: "no answer within \(timeout)", reason: RPCError.Reason.deadlineExceeded)
    }

    // MARK: Outbound

    private static let responseHeaders = HPACKHeaders([(":status", "200"), ("content-type", "application/grpc")])

    /// HEADERS, the length-prefixed message, and `grpc-status: 0` trailers.
    private func answer(payload: Data) {
        guard let context else { return }
        guard payload.count <= limits.maxFrameSize else {
            fail(
                RPCError(
                    code: .resourceExhausted, message: "the response is over the frame size limit",
                    reason: RPCError.Reason.responseTooLarge))
            return
        }
        state = .done
        var buffer = context.channel.allocator.buffer(capacity: 5 + payload.count)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        context.write(wrapOutboundOut(.headers(.init(headers: Self.responseHeaders))), promise: nil)
        context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: nil)
        context.writeAndFlush(
            wrapOutboundOut(.headers(.init(headers: HPACKHeaders([("grpc-status", "0")]), endStream: true))),
            promise: nil)
    }

    /// A trailers-only response carrying the error.
    private func fail(_ error: any Error) {
        guard let context else { return }
        state = .done
        let rpcError = Self.wireError(error, logger: logger, requestID: requestID)
        var headers = Self.responseHeaders
        for (name, value) in GRPCMapping.errorTrailers(rpcError) { headers.add(name: name, value: value) }
        if rpcError.code == .unimplemented, rpcError.reason == RPCError.Reason.compressionUnsupported.rawValue {
            headers.add(name: "grpc-accept-encoding", value: "identity")
        }
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
    }

    /// A non-gRPC request: an HTTP status and nothing else.
    private func answer(httpStatus: String) {
        guard let context else { return }
        state = .done
        context.writeAndFlush(
            wrapOutboundOut(.headers(.init(headers: HPACKHeaders([(":status", httpStatus)]), endStream: true))),
            promise: nil)
    }

    /// The error as the caller sees it; unknown errors never leave the process.
    static func wireError(_ error: any Error, logger: Logger, requestID: UInt64) -> RPCError {
        // The same one conversion the native path uses.
        let rpcError = RPCError(answering: error)
        if let cause = rpcError.cause {
            // Only the cause's type is logged: a description could carry a
            // secret from the request. INTERNAL means moatd failed.
            logger.log(
                level: rpcError.code == .internal ? .error : .debug, "call failed",
                metadata: [
                    "moat.request_id": "\(requestID)", "moat.error_type": "\(String(reflecting: type(of: cause)))",
                ])
        }
        return rpcError
    }
}
