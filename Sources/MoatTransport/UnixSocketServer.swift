import Foundation
public import Logging
import MoatProto
public import MoatRPC
public import NIOCore
public import NIOPosix
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why the server could not start.
public struct ServerStartError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The RPC server on a Unix stream socket.
///
/// `run()` binds the socket (unless ``start()`` already did), serves until a
/// graceful shutdown is requested (ServiceLifecycle), then stops accepting,
/// lets calls in flight finish (up to the grace period), closes every
/// connection and removes the socket file.
public final class UnixSocketServer: Service, Sendable {
    /// Where and how the server listens.
    public struct Configuration: Sendable {
        /// The socket file.
        public var socketPath: String
        /// The socket file's mode. Default 0660.
        public var socketMode: UInt32 = 0o660
        /// Transport limits.
        public var limits = TransportLimits()
        /// Who may connect, and who is an administrator.
        public var access: AccessPolicy
        /// A listening socket handed over by systemd (socket activation);
        /// nil binds ``socketPath``. An inherited socket's file is never
        /// removed.
        public var inheritedSocket: CInt?

        /// Creates a configuration.
        public init(socketPath: String, access: AccessPolicy, limits: TransportLimits = TransportLimits()) {
            self.socketPath = socketPath
            self.access = access
            self.limits = limits
        }
    }

    private struct State {
        var serverChannel: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
        var boundPath: String?
    }

    private let configuration: Configuration
    private let router: Router
    /// Server reflection over Moat's descriptor set, for gRPC clients.
    private let reflection: GRPCReflection?
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = Mutex(State())

    /// Creates a server. Nothing happens until ``start()`` or `run()`.
    public init(
        configuration: Configuration, router: Router,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) {
        self.configuration = configuration
        self.router = router
        do {
            reflection = try GRPCReflection(serving: router)
        } catch {
            // The committed descriptor set always parses (GRPCReflectionTests).
            logger.error("gRPC server reflection is off: \(error)")
            reflection = nil
        }
        self.group = eventLoopGroup
        self.logger = logger
    }

    /// The number of open connections.
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Binds the socket and starts accepting. Calling it again does nothing.
    public func start() async throws {
        if state.withLock({ $0.serverChannel != nil }) { return }
        let path = configuration.socketPath
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [self] channel in
                accept(channel)
            }
        if let descriptor = configuration.inheritedSocket {
            // systemd owns the socket file: serve it, never chmod or unlink it.
            let channel = try await bootstrap.withBoundSocket(descriptor).get()
            state.withLock { $0.serverChannel = channel }
            logger.info("listening on an inherited socket", metadata: ["moat.socket": "\(path)", "moat.fd": "\(descriptor)"])
            return
        }
        try Self.prepareSocketPath(path)
        let channel = try await bootstrap.bind(unixDomainSocketPath: path).get()
        guard chmod(path, mode_t(configuration.socketMode)) == 0 else {
            let error = errno
            try? await channel.close()
            throw ServerStartError("cannot set the mode of \(path): \(String(cString: strerror(error)))")
        }
        state.withLock {
            $0.serverChannel = channel
            $0.boundPath = path
        }
        logger.info(
            "listening",
            metadata: ["moat.socket": "\(path)", "moat.mode": "\(String(configuration.socketMode, radix: 8))"])
    }

    public func run() async throws {
        try await start()
        guard let channel = state.withLock({ $0.serverChannel }) else { return }
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            self.stopAccepting()
        }
        await drain()
    }

    /// Stops accepting and drains; for callers that do not use ServiceLifecycle.
    public func shutdown() async {
        stopAccepting()
        if let channel = state.withLock({ $0.serverChannel }) {
            try? await channel.closeFuture.get()
        }
        await drain()
    }

    private func stopAccepting() {
        let channel = state.withLock { state -> (any Channel)? in
            state.shuttingDown = true
            return state.serverChannel
        }
        channel?.close(promise: nil)
    }

    /// Tells every connection to finish its calls and close; waits for them
    /// up to the grace period, then closes what is left.
    private func drain() async {
        let connections = state.withLock { Array($0.connections.values) }
        logger.info("draining", metadata: ["moat.connections": "\(connections.count)"])
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(ServerConnectionHandler.DrainEvent())
        }
        let grace = configuration.limits.shutdownGracePeriod
        let closed = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for connection in connections { try? await connection.closeFuture.get() }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: grace)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !closed {
            logger.warning("grace period over; closing connections with calls in flight")
            for connection in state.withLock({ Array($0.connections.values) }) {
                try? await connection.close()
            }
        }
        if let path = state.withLock({ $0.boundPath }) {
            unlink(path)
            state.withLock { $0.boundPath = nil }
        }
        logger.info("stopped")
    }

    // MARK: Accepting

    private func accept(_ channel: any Channel) -> EventLoopFuture<Void> {
        PeerCredentials.read(from: channel).flatMapThrowing { [self] peer in
            guard let caller = configuration.access.admit(peer) else {
                logger.warning("refused caller", metadata: ["moat.peer": "\(peer)"])
                try refuse(
                    channel,
                    RPCError(
                        code: .permissionDenied, message: "uid \(peer.uid) may not connect",
                        reason: RPCError.Reason.callerNotAllowed))
                return
            }
            let admitted = state.withLock { state -> Bool in
                guard !state.shuttingDown, state.connections.count < configuration.limits.maxConnections else {
                    return false
                }
                state.connections[ObjectIdentifier(channel)] = channel
                return true
            }
            guard admitted else {
                try refuse(
                    channel,
                    RPCError(
                        code: .resourceExhausted, message: "too many connections",
                        reason: RPCError.Reason.tooManyConnections))
                return
            }
            channel.closeFuture.whenComplete { [self] _ in
                _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
            }
            try ConnectionPipeline.install(
                on: channel, router: router, reflection: reflection, caller: caller, limits: configuration.limits,
                logger: logger)
        }
    }

    private func refuse(_ channel: any Channel, _ error: RPCError) throws {
        try channel.pipeline.syncOperations.addHandler(RefusingHandler(error: error))
    }

    // MARK: Socket file

    /// Makes room for the socket: a stale socket (nothing listening) is
    /// removed; a live one, or a file that is not a socket, is an error.
    static func prepareSocketPath(_ path: String) throws {
        guard path.utf8.count < 108 else {
            throw ServerStartError("socket path is \(path.utf8.count) bytes; Unix sockets allow at most 107")
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw ServerStartError("\(path) exists and is not a socket; refusing to replace it")
        }
        if socketAcceptsConnections(path) {
            throw ServerStartError("another process is listening on \(path)")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw ServerStartError("cannot remove stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Whether something accepts connections on the socket path.
    static func socketAcceptsConnections(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }
}

/// Answers a refused connection with one status (id 0) and closes it
/// without reading anything from it.
final class RefusingHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let error: RPCError

    init(error: RPCError) { self.error = error }

    func channelActive(context: ChannelHandlerContext) {
        var response = Moat_Rpc_V1_Response()
        response.status = Moat_Rpc_V1_Status(error)
        let bytes = (try? response.serializedBytes() as [UInt8]) ?? []
        var buffer = context.channel.allocator.buffer(capacity: 4 + bytes.count)
        buffer.writeFrame(bytes)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    /// Never reads: a refused caller's bytes are not looked at.
    func read(context: ChannelHandlerContext) {}
}
