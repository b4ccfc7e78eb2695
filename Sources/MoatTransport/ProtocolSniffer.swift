import NIOCore

/// Looks at a connection's first bytes and hands it to the native framing
/// or to HTTP/2 (gRPC), then leaves the pipeline.
///
/// An HTTP/2 client opens with `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`. Read as a
/// native length prefix, "PRI " is 0x50524920 (1.35 GB): never a valid Moat
/// frame. So a first byte other than `P` is native at once, and a connection
/// starting with `P` is HTTP/2 when its first four bytes are "PRI ".
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Which protocol the connection speaks.
    enum WireProtocol: Equatable { case native, http2 }

    private let configure: (WireProtocol, any Channel) throws -> Void
    private let waitLimit: TimeAmount
    private let idleTimeout: TimeAmount
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var idleTimer: Scheduled<Void>?
    private var decided = false

    /// - Parameters:
    ///   - waitLimit: How long to wait for the four bytes once a `P` came.
    ///   - idleTimeout: A connection that sends nothing for this long is
    ///     closed, as an idle one of either protocol is.
    ///   - configure: Adds the chosen protocol's handlers (at the end of the
    ///     pipeline, after this handler).
    init(
        waitLimit: TimeAmount, idleTimeout: TimeAmount,
        configure: @escaping (WireProtocol, any Channel) throws -> Void
    ) {
        self.waitLimit = waitLimit
        self.idleTimeout = idleTimeout
        self.configure = configure
    }

    func handlerAdded(context: ChannelHandlerContext) {
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) { [self] in
            idleTimer = nil
            if !decided, buffered == nil { context.close(promise: nil) }
        }
    }

    /// The protocol of a connection opening with `bytes`, or nil when more
    /// bytes are needed.
    static func classify(_ bytes: ByteBuffer) -> WireProtocol? {
        guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) else { return nil }
        guard first == UInt8(ascii: "P") else { return .native }
        guard let four = bytes.getInteger(at: bytes.readerIndex, as: UInt32.self) else { return nil }
        return four == 0x5052_4920 ? .http2 : .native
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !decided else {
            context.fireChannelRead(data)
            return
        }
        if buffered == nil {
            buffered = bytes
        } else {
            buffered?.writeBuffer(&bytes)
        }
        guard let buffered, let chosen = Self.classify(buffered) else {
            if timer == nil {
                timer = context.eventLoop.assumeIsolated().scheduleTask(in: waitLimit) { [self] in
                    timer = nil
                    decide(.native, context: context)
                }
            }
            return
        }
        decide(chosen, context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !decided {
            if event is ServerConnectionHandler.DrainEvent, buffered == nil {
                // Nothing was sent yet, so nothing is in flight.
                context.close(promise: nil)
                return
            }
            if let event = event as? ChannelEvent, event == .inputClosed {
                // The client finished early: the native handlers answer a
                // partial frame as they always have.
                decide(.native, context: context)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        idleTimer?.cancel()
        context.fireChannelInactive()
    }

    private func decide(_ chosen: WireProtocol, context: ChannelHandlerContext) {
        guard !decided else { return }
        decided = true
        timer?.cancel()
        timer = nil
        idleTimer?.cancel()
        idleTimer = nil
        do {
            try configure(chosen, context.channel)
        } catch {
            context.close(promise: nil)
            return
        }
        if let bytes = buffered {
            buffered = nil
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
