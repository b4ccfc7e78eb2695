import Logging
import MoatRPC
import NIOCore
import NIOHTTP2

/// What the streams of one gRPC connection share. Touched only on the
/// connection's event loop.
final class GRPCConnectionShared {
    let router: Router
    let reflection: GRPCReflection?
    let caller: Caller
    let limits: TransportLimits
    let logger: Logger
    /// Set when the server drains: new calls get UNAVAILABLE.
    var draining = false

    init(router: Router, reflection: GRPCReflection?, caller: Caller, limits: TransportLimits, logger: Logger) {
        self.router = router
        self.reflection = reflection
        self.caller = caller
        self.limits = limits
        self.logger = logger
    }
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
            HTTP2Setting(parameter: .initialWindowSize, value: GRPCConnectionHandler.initialWindow),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
    }

    /// Request metadata is small; the limit is the frame limit, at most 16 KiB.
    static func headerListLimit(_ limits: TransportLimits) -> Int { min(limits.maxFrameSize, 1 << 14) }

    /// Adds the HTTP/2 handler (frames, HPACK, flow control, the HTTP/2
    /// state machine and its DoS limits) and behind it the one
    /// ``GRPCConnectionHandler`` serving every stream. No multiplexer: a
    /// stream is a ``GRPCStream`` object, not a child channel. Must run on
    /// the channel's loop.
    static func configure(
        _ channel: any Channel, router: Router, reflection: GRPCReflection?, caller: Caller, limits: TransportLimits,
        logger: Logger
    ) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = settings(limits)
        try channel.pipeline.syncOperations.addHandler(
            NIOHTTP2Handler(mode: .server, connectionConfiguration: connection))
        try channel.pipeline.syncOperations.addHandler(
            GRPCConnectionHandler(
                shared: GRPCConnectionShared(
                    router: router, reflection: reflection, caller: caller, limits: limits, logger: logger)))
    }
}

/// Serves the streams of one gRPC connection, behind the HTTP/2 handler:
/// hands each stream's frames to its ``GRPCStream``, writes theirs (flushed
/// once per read burst), gives back inbound flow-control window as request
/// bytes are consumed, and does the connection's duties: a graceful drain
/// (GOAWAY, then close once the open streams finish) and the idle timeout.
final class GRPCConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// HTTP/2's initial window, advertised as SETTINGS_INITIAL_WINDOW_SIZE.
    static let initialWindow = 65_535

    private let shared: GRPCConnectionShared
    private var limits: TransportLimits { shared.limits }
    private var logger: Logger { shared.logger }
    private var context: ChannelHandlerContext?
    private var streams: [HTTP2StreamID: GRPCStream] = [:]
    /// Numbers the calls of the connection (the request id handlers see).
    private var nextRequestID: UInt64 = 1
    /// Streams open now (HTTP/2's count, for the drain and the idle check).
    private var openStreams = 0
    /// The highest stream id the client opened (for GOAWAY).
    private var lastStreamID = HTTP2StreamID(0)
    /// The connection window the client is given: enough for a full message,
    /// so flow control never stalls a burst of small calls.
    private let connectionWindow: Int
    private var connectionWindowRaised = false
    /// Inbound DATA bytes not yet returned to the connection window.
    private var connectionUnacknowledged = 0
    /// Inside channelRead: writes are flushed at channelReadComplete.
    private var reading = false
    private var flushPending = false
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?
    private var closing = false

    init(shared: GRPCConnectionShared) {
        self.shared = shared
        self.connectionWindow = max(Self.initialWindow, shared.limits.maxFrameSize + 5)
    }

    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scheduleIdleCheck(at: .now() + limits.idleTimeout.timeAmount)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    private func tearDown() {
        idleTimer?.cancel()
        idleTimer = nil
        let open = streams
        streams = [:]
        for stream in open.values { stream.closed() }
    }

    // MARK: Frames

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = .now()
        let frame = unwrapInboundIn(data)
        if !connectionWindowRaised {
            // The client's preface has been read: raise the connection window
            // from HTTP/2's 65,535 to a full message.
            connectionWindowRaised = true
            if connectionWindow > Self.initialWindow {
                write(.rootStream, .windowUpdate(windowSizeIncrement: connectionWindow - Self.initialWindow))
                flushPending = true
            }
        }
        guard frame.streamID != .rootStream else { return }
        switch frame.payload {
        case .headers, .data:
            reading = true
            defer { reading = false }
            let stream: GRPCStream
            if let existing = streams[frame.streamID] {
                stream = existing
            } else {
                guard case .headers = frame.payload else { return }
                stream = GRPCStream(
                    streamID: frame.streamID, connection: self, shared: shared, eventLoop: context.eventLoop,
                    requestID: nextRequestID)
                nextRequestID &+= 1
                streams[frame.streamID] = stream
            }
            stream.received(frame.payload)
        default:
            // RST_STREAM ends a stream through StreamClosedEvent; WINDOW_UPDATE
            // and PRIORITY are the HTTP/2 handler's.
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    /// Writes one of a stream's frames (flushed by ``flushSoon()``).
    func write(_ streamID: HTTP2StreamID, _ payload: HTTP2Frame.FramePayload, promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: payload)), promise: promise)
    }

    /// Flushes now, or at the end of the read burst when answering inside one.
    func flushSoon() {
        if reading {
            flushPending = true
        } else {
            context?.flush()
        }
    }

    /// Request bytes a stream consumed: the connection window is given back
    /// once half of it is used.
    func consumedConnectionWindow(_ bytes: Int) {
        connectionUnacknowledged += bytes
        if connectionUnacknowledged >= connectionWindow / 2 {
            write(.rootStream, .windowUpdate(windowSizeIncrement: connectionUnacknowledged))
            connectionUnacknowledged = 0
            flushSoon()
        }
    }

    // MARK: Events

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let created as NIOHTTP2StreamCreatedEvent:
            lastActivity = .now()
            openStreams += 1
            if created.streamID > lastStreamID { lastStreamID = created.streamID }
        case let closed as StreamClosedEvent:
            lastActivity = .now()
            openStreams = max(0, openStreams - 1)
            streams.removeValue(forKey: closed.streamID)?.closed()
            closeIfDrained()
        case is ServerConnectionHandler.DrainEvent:
            shared.draining = true
            // No stream after the ones already opened will be served.
            let goAway = HTTP2Frame(
                streamID: .rootStream,
                payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
            context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
            closeIfDrained()
            return
        default:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let streamError = error as? NIOHTTP2Errors.StreamError {
            // A frame of ours the stream could no longer take (the client
            // reset it meanwhile): that stream is over, the connection not.
            streams.removeValue(forKey: streamError.streamID)?.closed()
            return
        }
        // HTTP/2 protocol errors: the HTTP/2 handler has already sent
        // GOAWAY; the connection is of no further use.
        // Only the type: an HPACK error can quote a header value (a token).
        logger.debug("gRPC connection error", metadata: ["moat.error_type": "\(String(reflecting: type(of: error)))"])
        closing = true
        context.close(promise: nil)
    }

    private func closeIfDrained() {
        guard let context, shared.draining, openStreams == 0, !closing else { return }
        closing = true
        context.close(promise: nil)
    }

    private func scheduleIdleCheck(at deadline: NIODeadline) {
        guard let context else { return }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            idleTimer = nil
            let idleUntil = lastActivity + limits.idleTimeout.timeAmount
            if openStreams == 0, idleUntil <= .now() {
                logger.debug("closing idle gRPC connection")
                closing = true
                self.context?.close(promise: nil)
            } else {
                scheduleIdleCheck(at: max(idleUntil, .now() + .nanoseconds(limits.idleTimeout.nanoseconds / 10)))
            }
        }
    }
}
