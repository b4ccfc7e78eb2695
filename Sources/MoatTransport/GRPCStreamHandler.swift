import Foundation
import Logging
import MoatProto
import MoatRPC
import NIOCore
import NIOHPACK
import NIOHTTP2
import SwiftProtobuf

/// Serves one gRPC call: one HTTP/2 stream of a connection.
///
/// Reads the request HEADERS (`:path`, Moat's metadata, `grpc-timeout`),
/// collects the one length-prefixed request message up to END_STREAM, then
/// dispatches it through the same ``Router`` (access declarations, fast
/// paths, handlers) as the native framing, and answers with HEADERS, one
/// DATA and trailers, or trailers only for an error.
///
/// Server reflection (``GRPCReflection``), the one streaming rpc, is
/// answered here too: each request message as it arrives, one response
/// message each, trailers when the client ends its side.
///
/// Not a channel of its own: ``GRPCConnectionHandler`` hands it its
/// stream's frames and writes its frames, so a call costs no child channel
/// or pipeline. Runs on the connection's event loop; handlers run as tasks
/// and hop back.
final class GRPCStream {

    private enum State {
        /// Waiting for the request HEADERS.
        case idle
        /// HEADERS read; collecting the message until END_STREAM.
        case receiving(Call)
        /// Dispatched; waiting for the handler.
        case running(task: Task<Void, Never>?, timer: Scheduled<Void>?)
        /// A server reflection stream, answering requests as they come.
        case reflecting(ReflectionStream)
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

    /// What a reflection stream keeps between its messages.
    private final class ReflectionStream {
        /// Request bytes not yet answered (an incomplete message at most,
        /// unless writing is paused).
        var pending: ByteBuffer?
        /// Files this stream has been sent (see ``GRPCReflection/answer(_:sent:)``).
        var sent: Set<String> = []
        var headersSent = false
        /// The client ended its side.
        var ended = false
        /// Answer bytes written but not yet sent.
        var unsent = 0
        /// Answering (and the client's stream window) stopped because the
        /// client is not reading the answers.
        var paused = false
        var timer: Scheduled<Void>?
    }

    let streamID: HTTP2StreamID
    private let shared: GRPCConnectionShared
    /// Writes this stream's frames; nil once the stream is closed.
    private var connection: GRPCConnectionHandler?
    private let eventLoop: any EventLoop
    private let requestID: UInt64
    private var state = State.idle
    /// Inbound DATA bytes not yet returned to the client's stream window.
    private var unacknowledged = 0
    /// The client ended its side of the stream (END_STREAM).
    private var inputEnded = false

    private var router: Router { shared.router }
    private var reflection: GRPCReflection? { shared.reflection }
    private var caller: Caller { shared.caller }
    private var limits: TransportLimits { shared.limits }
    private var logger: Logger { shared.logger }

    init(
        streamID: HTTP2StreamID, connection: GRPCConnectionHandler, shared: GRPCConnectionShared,
        eventLoop: any EventLoop, requestID: UInt64
    ) {
        self.streamID = streamID
        self.connection = connection
        self.shared = shared
        self.eventLoop = eventLoop
        self.requestID = requestID
    }

    /// The stream closed (answered and ended by the client, reset, or the
    /// connection went away): a running handler is cancelled.
    func closed() {
        abandon()
        connection = nil
    }

    private func abandon() {
        switch state {
        case .running(let task, let timer):
            task?.cancel()
            timer?.cancel()
        case .reflecting(let stream):
            stream.timer?.cancel()
        case .idle, .receiving, .done:
            break
        }
        state = .done
    }

    // MARK: Inbound

    /// One frame of this stream, from the client.
    func received(_ payload: HTTP2Frame.FramePayload) {
        switch payload {
        case .headers(let headers):
            if headers.endStream { inputEnded = true }
            received(headers: headers.headers, endStream: headers.endStream)
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else {
                fail(RPCError(code: .internal, message: "unexpected file region", reason: RPCError.Reason.internalError))
                return
            }
            if data.endStream { inputEnded = true }
            consumed(buffer.readableBytes + (data.paddingBytes.map { $0 + 1 } ?? 0), endStream: data.endStream)
            received(data: buffer, endStream: data.endStream)
        default:
            break
        }
    }

    /// Flow control: the bytes of a DATA frame are consumed as they come
    /// (buffered up to the message limit), so the stream's window is given
    /// back once half of it is used, while the client still sends and
    /// (reflection) reads the answers.
    private func consumed(_ bytes: Int, endStream: Bool) {
        connection?.consumedConnectionWindow(bytes)
        guard !endStream else { return }
        unacknowledged += bytes
        if case .reflecting(let stream) = state, stream.paused { return }
        returnStreamWindow()
    }

    private func returnStreamWindow() {
        guard !inputEnded, unacknowledged >= GRPCConnectionHandler.initialWindow / 2, let connection else { return }
        connection.write(streamID, .windowUpdate(windowSizeIncrement: unacknowledged))
        connection.flushSoon()
        unacknowledged = 0
    }

    private func received(headers: HPACKHeaders, endStream: Bool) {
        if case .reflecting(let stream) = state {
            if endStream {
                stream.ended = true
                serveReflection()
            }
            return
        }
        guard case .idle = state else {
            // Trailers from the client (allowed by HTTP/2, unused by gRPC)
            // end the request like END_STREAM on DATA.
            if endStream { requestEnded() }
            return
        }
        var method = "", path = "", contentType = ""
        for (name, value, _) in headers where name.utf8.first == UInt8(ascii: ":") || name == "content-type" {
            switch name {
            case ":method": method = value
            case ":path": path = value
            case "content-type": contentType = value
            default: break
            }
        }
        guard method == "POST" else {
            answer(httpStatus: "405")
            return
        }
        guard
            contentType == "application/grpc" || contentType.hasPrefix("application/grpc+proto")
                || contentType.hasPrefix("application/grpc;")
        else {
            // The gRPC spec: a non-gRPC content type gets HTTP 415.
            answer(httpStatus: "415")
            return
        }
        let metadata = GRPCMapping.callMetadata(headers.lazy.map { ($0.name, $0.value) })
        if let problem = metadata.problem {
            fail(problem)
            return
        }
        guard !shared.draining else {
            fail(RPCError(code: .unavailable, message: "the server is shutting down", reason: RPCError.Reason.shuttingDown))
            return
        }
        if let reflection, GRPCReflection.paths.contains(path) {
            startReflection(reflection, metadata: metadata, endStream: endStream)
            return
        }
        let resolved: ServerMethod
        do {
            resolved = try router.resolve(path: path, caller: caller, authorization: metadata.authorization)
        } catch {
            fail(error)
            return
        }
        let timeout = limits.deadline(forTimeoutMilliseconds: metadata.timeoutMilliseconds)
        state = .receiving(
            Call(
                method: resolved, metadata: metadata, deadline: .now() + timeout.timeAmount, timeout: timeout,
                body: nil))
        if endStream { requestEnded() }
    }

    private func received(data: ByteBuffer, endStream: Bool) {
        if case .reflecting(let stream) = state {
            var data = data
            if stream.pending == nil {
                // (END_STREAM often comes on an empty DATA frame.)
                if data.readableBytes > 0 { stream.pending = data }
            } else {
                stream.pending?.writeBuffer(&data)
            }
            if endStream { stream.ended = true }
            serveReflection()
            return
        }
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
        guard case .receiving(let call) = state else { return }
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

        let eventLoop = self.eventLoop
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

    // MARK: Server reflection

    /// Public access (the schema only); the call's deadline bounds the stream.
    private func startReflection(_ reflection: GRPCReflection, metadata: GRPCMapping.CallMetadata, endStream: Bool) {
        let timeout = limits.deadline(forTimeoutMilliseconds: metadata.timeoutMilliseconds)
        let stream = ReflectionStream()
        stream.ended = endStream
        state = .reflecting(stream)
        stream.timer = eventLoop.assumeIsolated().scheduleTask(in: timeout.timeAmount) { [self] in
            finishReflection(deadlineError(timeout))
        }
        if endStream { serveReflection() }
    }

    /// Answers written but not yet sent past which a reflection stream stops
    /// answering (and stops giving the client stream window) until the
    /// client reads: a client that asks and never reads costs this, no more.
    static let reflectionOutboundLimit = 256 << 10

    /// Answers every complete request message while the client reads the
    /// answers; ends the stream once the client has ended its side.
    private func serveReflection() {
        guard case .reflecting(let stream) = state, let connection, let reflection else { return }
        var wrote = false
        defer { if wrote { connection.flushSoon() } }
        while stream.unsent < Self.reflectionOutboundLimit, var pending = stream.pending, pending.readableBytes >= 5,
            let compressed = pending.getInteger(at: pending.readerIndex, as: UInt8.self),
            let length = pending.getInteger(at: pending.readerIndex + 1, as: UInt32.self)
        {
            guard Int(length) <= limits.maxFrameSize else {
                finishReflection(
                    RPCError(
                        code: .resourceExhausted,
                        message: "request message is over the \(limits.maxFrameSize)-byte limit",
                        reason: RPCError.Reason.frameTooLarge))
                return
            }
            guard pending.readableBytes >= 5 + Int(length) else { break }
            guard compressed == 0 else {
                finishReflection(
                    RPCError(
                        code: .unimplemented, message: "compressed messages are not supported (identity only)",
                        reason: RPCError.Reason.compressionUnsupported))
                return
            }
            stream.pending = nil
            pending.moveReaderIndex(forwardBy: 5)
            let message = pending.readSlice(length: Int(length)) ?? ByteBuffer()
            stream.pending = pending.readableBytes > 0 ? pending : nil
            let answer: Data
            do {
                let request = try Grpc_Reflection_V1_ServerReflectionRequest(
                    serializedBytes: Data(message.readableBytesView))
                answer = try reflection.answer(request, sent: &stream.sent).serializedBytes()
            } catch {
                finishReflection(
                    RPCError(
                        code: .invalidArgument, message: "payload is not a valid grpc.reflection.v1.ServerReflectionRequest",
                        reason: RPCError.Reason.invalidPayload))
                return
            }
            guard answer.count <= limits.maxFrameSize else {
                finishReflection(
                    RPCError(
                        code: .resourceExhausted, message: "the response is over the frame size limit",
                        reason: RPCError.Reason.responseTooLarge))
                return
            }
            if !stream.headersSent {
                stream.headersSent = true
                connection.write(streamID, .headers(.init(headers: Self.responseHeaders)))
            }
            var buffer = connection.allocator.buffer(capacity: 5 + answer.count)
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt32(answer.count))
            buffer.writeBytes(answer)
            let size = buffer.readableBytes
            stream.unsent += size
            let promise = eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenComplete { [self] _ in
                stream.unsent -= size
                if stream.paused, stream.unsent < Self.reflectionOutboundLimit {
                    stream.paused = false
                    returnStreamWindow()
                    serveReflection()
                }
            }
            connection.write(streamID, .data(.init(data: .byteBuffer(buffer))), promise: promise)
            wrote = true
        }
        if stream.unsent >= Self.reflectionOutboundLimit {
            // Backpressure: the client gets no more stream window (so sends
            // no more requests) until it reads the answers.
            stream.paused = true
        } else if stream.ended {
            if stream.pending != nil {
                finishReflection(
                    RPCError(
                        code: .invalidArgument, message: "the stream ended inside a length-prefixed message",
                        reason: RPCError.Reason.malformedFrame))
            } else {
                finishReflection(nil)
            }
        }
    }

    /// Ends a reflection stream: `grpc-status: 0`, or the error.
    private func finishReflection(_ error: RPCError?) {
        guard case .reflecting(let stream) = state, let connection else { return }
        stream.timer?.cancel()
        guard stream.headersSent else {
            if let error {
                fail(error)
            } else {
                state = .done
                connection.write(streamID, .headers(.init(headers: Self.okTrailersOnly, endStream: true)))
                connection.flushSoon()
            }
            return
        }
        state = .done
        var trailers = Self.okTrailers
        if let error {
            trailers = HPACKHeaders()
            let rpcError = Self.wireError(error, logger: logger, requestID: requestID)
            for (name, value) in GRPCMapping.errorTrailers(rpcError) { trailers.add(name: name, value: value) }
        }
        connection.write(streamID, .headers(.init(headers: trailers, endStream: true)))
        connection.flushSoon()
    }

    // MARK: Outbound

    private static let responseHeaders = HPACKHeaders([(":status", "200"), ("content-type", "application/grpc")])
    private static let okTrailers = HPACKHeaders([("grpc-status", "0")])
    private static let okTrailersOnly = HPACKHeaders([
        (":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "0"),
    ])

    /// HEADERS, the length-prefixed message, and `grpc-status: 0` trailers.
    private func answer(payload: Data) {
        guard let connection else { return }
        guard payload.count <= limits.maxFrameSize else {
            fail(
                RPCError(
                    code: .resourceExhausted, message: "the response is over the frame size limit",
                    reason: RPCError.Reason.responseTooLarge))
            return
        }
        state = .done
        var buffer = connection.allocator.buffer(capacity: 5 + payload.count)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(payload.count))
        buffer.writeBytes(payload)
        connection.write(streamID, .headers(.init(headers: Self.responseHeaders)))
        connection.write(streamID, .data(.init(data: .byteBuffer(buffer))))
        connection.write(streamID, .headers(.init(headers: Self.okTrailers, endStream: true)))
        connection.flushSoon()
    }

    /// A trailers-only response carrying the error.
    private func fail(_ error: any Error) {
        guard let connection else { return }
        state = .done
        let rpcError = Self.wireError(error, logger: logger, requestID: requestID)
        var headers = Self.responseHeaders
        for (name, value) in GRPCMapping.errorTrailers(rpcError) { headers.add(name: name, value: value) }
        if rpcError.code == .unimplemented, rpcError.reason == RPCError.Reason.compressionUnsupported.rawValue {
            headers.add(name: "grpc-accept-encoding", value: "identity")
        }
        connection.write(streamID, .headers(.init(headers: headers, endStream: true)))
        connection.flushSoon()
    }

    /// A non-gRPC request: an HTTP status and nothing else.
    private func answer(httpStatus: String) {
        guard let connection else { return }
        state = .done
        connection.write(streamID, .headers(.init(headers: HPACKHeaders([(":status", httpStatus)]), endStream: true)))
        connection.flushSoon()
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
