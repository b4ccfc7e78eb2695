import Foundation
public import Logging
public import MoatCore
public import MoatRPC
public import MoatStore
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

/// The assembled daemon: its store, services, the socket server and their
/// lifecycle.
public final class MoatDaemon: Sendable {
    /// The configuration in effect.
    public let configuration: MoatConfiguration
    /// The socket server (exposed for tests and embedding).
    public let server: UnixSocketServer
    /// The account domain (exposed for tests and embedding).
    public let accounts: AccountService
    /// The account store (SQLite or PostgreSQL, per `store.backend`).
    public let store: any AccountStore
    private let backend: StoreBackend
    /// Signalled after each committed write that appended events.
    public var eventSignal: EventSignal { backend.eventSignal }
    /// The SQLite store, when `store.backend` is `sqlite` (tests, embedding).
    public var sqliteStore: SQLiteAccountStore? {
        if case .sqlite(let store) = backend { store } else { nil }
    }
    /// The event stream (exposed for tests and embedding).
    public let events: EventStream
    private let hashingPool: HashingThreadPool
    private let serving: ServingState
    private let logger: Logger
    private let group: ServiceGroup
    private let notifier: SystemdNotifier?
    /// Master-key rotation (exposed for tests and embedding).
    public let keyRotation: KeyRotation

    /// The database file inside the data directory.
    public static let databaseFileName = "moat.db"

    /// Prepares the data directory, opens (and migrates) the database, loads
    /// or creates the key file, and builds the services. Nothing listens
    /// until ``run()``.
    ///
    /// - Parameter extraServices: Services served besides Moat's own (for
    ///   embedding and tests).
    public static func open(
        configuration: MoatConfiguration, logger: Logger, clock: any WallClock = SystemWallClock(),
        extraServices: [any RPCService] = []
    ) async throws -> MoatDaemon {
        try prepareDataDirectory(configuration.dataDirectory)
        let store = try await StoreBackend.open(configuration: configuration, logger: logger)
        do {
            let keys = try await MasterKeys.load(directory: configuration.dataDirectory, store: store.keyStore, logger: logger)
            let hashingPool = HashingThreadPool(configuration: configuration.hashing)
            let hasher: PasswordHasher
            do {
                hasher = try PasswordHasher(configuration: configuration.hashing, executor: hashingPool)
            } catch {
                await hashingPool.shutdown()
                throw error
            }
            return try MoatDaemon(
                configuration: configuration, store: store, hasher: hasher, hashingPool: hashingPool,
                secrets: keys.keyring, retiringKey: keys.retiring?.fingerprint, clock: clock, logger: logger,
                extraServices: extraServices)
        } catch {
            await store.close()
            throw error
        }
    }

    static let keyFingerprintKey = MasterKeys.currentKey

    private init(
        configuration: MoatConfiguration, store backend: StoreBackend, hasher: PasswordHasher,
        hashingPool: HashingThreadPool, secrets: SecretKeyring, retiringKey: String?, clock: any WallClock,
        logger: Logger, extraServices: [any RPCService]
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.backend = backend
        let store = backend.store
        self.store = store
        self.hashingPool = hashingPool
        // Per-address sign-in failures in the store: they survive a restart,
        // and on PostgreSQL every instance counts into the same windows.
        let addressFailures: any AddressFailureCounter =
            switch backend {
            case .sqlite(let sqlite): SQLiteAddressFailureCounter(store: sqlite)
            case .postgres(let postgres): PostgresAddressFailureCounter(store: postgres)
            }
        let accounts = AccountService(
            store: store, hasher: hasher, clock: clock, configuration: configuration.accounts,
            sessionCache: SessionCache(
                capacity: configuration.sessions.cacheEntries,
                touchGranularityMilliseconds: Int64(configuration.sessions.lastActiveGranularitySeconds) * 1000),
            secrets: secrets, addressFailures: addressFailures,
            deviceFamily: DeviceFamily.parsed)
        self.accounts = accounts
        let events = EventStream(
            store: store, signal: backend.eventSignal, clock: clock, configuration: configuration.events.stream)
        self.events = events

        let serving = ServingState(fence: store.validityMarks.fence)
        self.serving = serving
        // Metrics are exported when the process bootstrapped the backend
        // (moatd does, first thing); embedders may not.
        let exporter = MetricsExporter.bootstrappedRegistry.map {
            MetricsExporter(registry: $0, accounts: accounts, events: events, store: backend)
        }
        let rotation = KeyRotation(
            directory: configuration.dataDirectory, store: backend.keyStore, keyring: secrets, retiring: retiringKey, logger: logger,
            batchSize: configuration.keys.rotationBatchSize)
        self.keyRotation = rotation
        let router = try ServiceRouter.make(
            accounts: accounts, events: events, serving: serving,
            operatorServices: [OperationsHandler(store: backend, keyRotation: rotation, metrics: exporter)],
            extraServices: extraServices, clock: clock)

        var serverConfiguration = UnixSocketServer.Configuration(
            socketPath: configuration.socketPath,
            access: configuration.accessPolicy(daemonUID: getuid()),
            limits: configuration.limits)
        serverConfiguration.socketMode = configuration.socket.mode
        serverConfiguration.inheritedSocket = configuration.socket.inheritedDescriptor
        let server = UnixSocketServer(configuration: serverConfiguration, router: router, logger: logger)
        self.server = server
        exporter?.attach(server: server)
        var listener: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let address = configuration.metrics.listen {
            if let exporter {
                listener.append(
                    .init(
                        service: MetricsListener(
                            address: address, socketMode: configuration.socket.mode, exporter: exporter, logger: logger),
                        successTerminationBehavior: .ignore))
            } else {
                logger.warning("metrics.listen is set but no metrics backend was bootstrapped; not listening")
            }
        }
        let notifier = SystemdNotifier.fromEnvironment()
        self.notifier = notifier
        let jobGate = backend.jobGate(logger: logger)
        let systemd: [ServiceGroupConfiguration.ServiceConfiguration] = notifier.map { notifier in
            [.init(
                service: SystemdNotifyService(
                    notifier: notifier, watchdogInterval: SystemdNotifier.watchdogInterval(),
                    eventLoops: MultiThreadedEventLoopGroup.singleton, store: backend, server: server,
                    socketDescription: Self.socketDescription(configuration), logger: logger),
                successTerminationBehavior: .ignore)]
        } ?? []
        self.group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: ServingStateService(state: serving), successTerminationBehavior: .ignore),
                    .init(
                        service: StoreProbe.service(
                            backend: backend, readiness: serving.store, interval: backend.probeInterval, logger: logger),
                        successTerminationBehavior: .ignore),
                    // Shut down in reverse order: the server drains first,
                    // then the last last-active flush runs.
                    .init(
                        service: SessionMaintenance.lastActiveFlush(
                            accounts: accounts, settings: configuration.sessions, logger: logger),
                        successTerminationBehavior: .ignore),
                    .init(
                        service: SessionMaintenance.cleanup(
                            accounts: accounts, settings: configuration.sessions, gate: jobGate, logger: logger),
                        successTerminationBehavior: .ignore),
                    .init(
                        service: PurgeJob.service(
                            accounts: accounts, intervalSeconds: configuration.accounts.purgeIntervalSeconds,
                            gate: jobGate, logger: logger),
                        successTerminationBehavior: .ignore),
                ] + listener + [
                    .init(service: server, successTerminationBehavior: .gracefullyShutdownGroup),
                    // Stops re-sealing before the drain; the next start resumes.
                    .init(service: KeyRotationService(rotation: rotation), successTerminationBehavior: .ignore),
                    // Told first: wakes waiting long polls so the drain
                    // does not wait for them.
                    .init(
                        service: EventRetention.service(
                            events: events, settings: configuration.events, gate: jobGate, logger: logger),
                        successTerminationBehavior: .ignore),
                ] + systemd,  // last, so STOPPING=1 goes out the moment SIGTERM arrives
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
    }

    /// Runs until SIGTERM, SIGINT or ``shutdown()``, then drains calls in
    /// flight and stops. The socket is listening before this first suspends
    /// on the services.
    public func run() async throws {
        do {
            try await server.start()
            notifier?.send("READY=1\nSTATUS=Serving on \(Self.socketDescription(configuration))")
            try await group.run()
        } catch {
            await close()
            throw error
        }
        await close()
    }

    static func socketDescription(_ configuration: MoatConfiguration) -> String {
        configuration.socketPath + (configuration.socket.inheritedDescriptor == nil ? "" : " (socket-activated)")
    }

    /// Closes the store and stops the hashing threads.
    private func close() async {
        await backend.close()
        await hashingPool.shutdown()
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
