import Foundation
public import Logging
public import MoatRPC
public import MoatTransport
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why the daemon could not start.
public struct DaemonStartError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The assembled daemon: its services, the socket server and their lifecycle.
public final class MoatDaemon: Sendable {
    /// The configuration in effect.
    public let configuration: MoatConfiguration
    /// The socket server (exposed for tests and embedding).
    public let server: UnixSocketServer
    private let serving: ServingState
    private let logger: Logger
    private let group: ServiceGroup

    /// Prepares the data directory and builds the services. Nothing listens
    /// until ``run()``.
    ///
    /// - Parameter extraServices: Services served besides Moat's own (for
    ///   embedding and tests).
    public init(configuration: MoatConfiguration, logger: Logger, extraServices: [any RPCService] = []) throws {
        self.configuration = configuration
        self.logger = logger
        try Self.prepareDataDirectory(configuration.dataDirectory)

        let serving = ServingState()
        self.serving = serving
        var router = Router(services: [HealthService(state: serving)])
        for service in extraServices { router.register(service) }

        var serverConfiguration = UnixSocketServer.Configuration(
            socketPath: configuration.socketPath,
            access: configuration.accessPolicy(daemonUID: getuid()),
            limits: configuration.limits)
        serverConfiguration.socketMode = configuration.socket.mode
        let server = UnixSocketServer(configuration: serverConfiguration, router: router, logger: logger)
        self.server = server
        self.group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: ServingStateService(state: serving), successTerminationBehavior: .ignore),
                    .init(service: server, successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
    }

    /// Runs until SIGTERM, SIGINT or ``shutdown()``, then drains calls in
    /// flight and stops. The socket is listening before this first suspends
    /// on the services.
    public func run() async throws {
        try await server.start()
        try await group.run()
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    public func shutdown() async {
        await group.triggerGracefulShutdown()
    }

    /// Creates the data directory (mode 0750) if needed and checks it is a
    /// directory that others cannot write to.
    static func prepareDataDirectory(_ path: String) throws {
        var info = stat()
        if stat(path, &info) != 0 {
            guard errno == ENOENT else {
                throw DaemonStartError("cannot read data directory \(path): \(String(cString: strerror(errno)))")
            }
            do {
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            } catch {
                throw DaemonStartError("cannot create data directory \(path): \(error.localizedDescription)")
            }
            return
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw DaemonStartError("data directory \(path) exists and is not a directory")
        }
        guard info.st_mode & S_IWOTH == 0 else {
            throw DaemonStartError("data directory \(path) is writable by others; chmod o-w it")
        }
    }
}

/// Flips Health to NOT_SERVING as soon as a graceful shutdown starts.
struct ServingStateService: Service {
    let state: ServingState

    func run() async throws {
        try? await gracefulShutdown()
        state.stopServing()
    }
}
