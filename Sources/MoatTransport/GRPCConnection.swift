import Logging
import MoatRPC
import NIOCore
import NIOHTTP2

/// What the streams of one gRPC connection share. Touched only on the
/// connection's event loop (stream channels run on their parent's loop).
final class GRPCConnectionState {
    /// Set when the server drains: new calls get UNAVAILABLE.
    var draining = false
    /// Numbers the calls of the connection (the request id handlers see).
    var nextRequestID: UInt64 = 1
    /// Streams open now.
    var openStreams = 0
    /// The highest stream id the client opened (for GOAWAY).
    var lastStreamID = HTTP2StreamID(0)
}

/// The HTTP/2 side of a connection the listener recognised as gRPC.
enum GRPCServerPipeline {
    /// HTTP/2 settings from Moat's limits: concurrent streams are the calls
    /// in flight per connection; frame and header-list sizes follow the frame
    /// limit (within what HTTP/2 allows).
    static func settings(_ limits: TransportLimits) -> HTTP2Settings {
        [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: max(1, limits.maxInFlightPerConnection)),
            HTTP2Setting(parameter: .maxFrameSize, value: min(max(limits.maxFrameSize, 1 << 14), (1 << 24) - 1)),
            HTTP2Setting(parameter: .maxHeaderListSize, value: headerListLimit(limits)),
            HTTP2Setting(parameter: .initialWindowSize, value: 65_535),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
    }

    /// Request metadata is small; the limit is the frame limit, at most 16 KiB.
    static func headerListLimit(_ limits: TransportLimits) -> Int { min(limits.maxFrameSize, 1 << 14) }

    /// Adds the HTTP/2 handler, the connection handler (drain, idle) and a
    /// ``GRPCStreamHandler`` per stream. Must run on the channel's loop.
    static func configure(
        _ channel: any Channel, router: Router, caller: Caller, limits: TransportLimits, logger: Logger
    ) throws {
        let state = NIOLoopBound(GRPCConnectionState(), eventLoop: channel.eventLoop)
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = settings(limits)
        // Enough window for a full message on the connection, so flow
        // control never stalls a burst of small calls.
        connection.targetWindowSize = max(65_535, limits.maxFrameSize + 5)
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = max(65_535, min(limits.maxFrameSize + 5, 1 << 20))
        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connection, streamConfiguration: stream
        ) { streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                let shared = state.value
                let id = shared.nextRequestID
                shared.nextRequestID &+= 1
                try streamChannel.pipeline.syncOperations.addHandler(
                    GRPCStreamHandler(
                        router: router, caller: caller, limits: limits, connection: shared, requestID: id,
                        logger: logger))
            }
        }
        try channel.pipeline.syncOperations.addHandler(
            GRPCConnectionHandler(state: state.value, limits: limits, logger: logger))
    }
}

/// Connection-level duties of a gRPC connection, behind the HTTP/2 handler:
/// a graceful drain (GOAWAY, then close once the open streams finish) and
/// the idle timeout.
final class GRPCConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let state: GRPCConnectionState
    private let limits: TransportLimits
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    private var closing = false

    init(state: GRPCConnectionState, limits: TransportLimits, logger: Logger) {
        self.state = state
        self.limits = limits
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduleIdleCheck(at: .now() + limits.idleTimeout.timeAmount)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = .now()
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let created as NIOHTTP2StreamCreatedEvent:
            lastActivity = .now()
            state.openStreams += 1
            if created.streamID > state.lastStreamID { state.lastStreamID = created.streamID }
        case is StreamClosedEvent:
            lastActivity = .now()
            state.openStreams = max(0, state.openStreams - 1)
            closeIfDrained()
        case is ServerConnectionHandler.DrainEvent:
            state.draining = true
            // No stream after the ones already opened will be served.
            let goAway = HTTP2Frame(
                streamID: .rootStream,
                payload: .goAway(lastStreamID: state.lastStreamID, errorCode: .noError, opaqueData: nil))
            context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
            closeIfDrained()
            return
        default:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // HTTP/2 protocol errors: the HTTP/2 handler has already sent
        // GOAWAY; the connection is of no further use.
        // Only the type: an HPACK error can quote a header value (a token).
        logger.debug("gRPC connection error", metadata: ["moat.error_type": "\(String(reflecting: type(of: error)))"])
        closing = true
        context.close(promise: nil)
    }

    private func closeIfDrained() {
        guard let context, state.draining, state.openStreams == 0, !closing else { return }
        closing = true
        context.close(promise: nil)
    }

    private func scheduleIdleCheck(at deadline: NIODeadline) {
        guard let context else { return }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            idleTimer = nil
            let idleUntil = lastActivity + limits.idleTimeout.timeAmount
            if state.openStreams == 0, idleUntil <= .now() {
                logger.debug("closing idle gRPC connection")
                closing = true
                self.context?.close(promise: nil)
            } else {
                scheduleIdleCheck(at: max(idleUntil, .now() + .nanoseconds(limits.idleTimeout.nanoseconds / 10)))
            }
        }
    }
}
