public import Logging
public import MoatRPC
public import NIOCore

/// The handlers of one admitted connection: a ``ProtocolSniffer`` that, on
/// the first bytes, installs the native framing (frame decoder and
/// ``ServerConnectionHandler``) or HTTP/2 for gRPC (``GRPCServerPipeline``).
///
/// The listener calls it for every connection it admits; the gRPC fuzz
/// harness calls it on an in-memory channel, so both run the same pipeline.
public enum ConnectionPipeline {
    /// Adds the sniffer to `channel` (active, on its event loop); gRPC
    /// server reflection is served when `reflection` is given.
    public static func install(
        on channel: any Channel, router: Router, reflection: GRPCReflection? = nil, caller: Caller,
        limits: TransportLimits, logger: Logger
    ) throws {
        try channel.pipeline.syncOperations.addHandler(
            ProtocolSniffer(
                waitLimit: limits.frameTimeout.timeAmount, idleTimeout: limits.idleTimeout.timeAmount
            ) { chosen, channel in
                switch chosen {
                case .native:
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(
                            FrameDecoder(maxFrameSize: limits.maxFrameSize, reportsProgress: true),
                            maximumBufferSize: limits.maxFrameSize + 4),
                        ServerConnectionHandler(router: router, caller: caller, limits: limits, logger: logger))
                case .http2:
                    try GRPCServerPipeline.configure(
                        channel, router: router, reflection: reflection, caller: caller, limits: limits,
                        logger: logger)
                }
            })
    }
}
