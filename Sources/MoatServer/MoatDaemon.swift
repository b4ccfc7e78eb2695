import Foundation
public import Logging
public import MoatCore
public import MoatRPC
import MoatStore
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
    /// The event stream (exposed for tests and embedding).
    public let events: EventStream
    private let hasher: PasswordHasher
    private let serving: ServingState
    private let logger: Logger
    private let group: ServiceGroup

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
            let recorded = try await store.meta(keyFingerprintKey).map { String(decoding: $0, as: UTF8.self) }
            let key = try KeyFile.load(directory: configuration.dataDirectory, mayCreate: recorded == nil)
            if let recorded, recorded != key.fingerprint {
                throw DaemonStartError(
                    "master.key (fingerprint \(key.fingerprint)) is not the key this database was created with (\(recorded))")
            }
            if recorded == nil {
                // Instances starting together on an empty PostgreSQL: the
                // first fingerprint recorded wins, the others refuse.
                let winner = String(
                    decoding: try await store.setMetaIfAbsent(keyFingerprintKey, Array(key.fingerprint.utf8)),
                    as: UTF8.self)
                if winner != key.fingerprint {
                    throw DaemonStartError(
                        "master.key (fingerprint \(key.fingerprint)) is not the key this database was created with (\(winner))")
                }
            }
            if key.created { logger.notice("created master key", metadata: ["moat.key_id": "\(key.fingerprint)"]) }
            let hasher = try PasswordHasher(configuration: configuration.hashing)
            return MoatDaemon(
                configuration: configuration, store: store, hasher: hasher,
                secrets: SecretKeyring(current: (id: key.fingerprint, key: key.key)), clock: clock, logger: logger,
                extraServices: extraServices)
        } catch {
            await store.close()
            throw error
        }
    }

    static let keyFingerprintKey = "master_key_fingerprint"

    private init(
        configuration: MoatConfiguration, store backend: StoreBackend, hasher: PasswordHasher, secrets: SecretKeyring,
        clock: any WallClock, logger: Logger, extraServices: [any RPCService]
    ) {
        self.configuration = configuration
        self.logger = logger
        self.backend = backend
        let store = backend.store
        self.store = store
        self.hasher = hasher
        let accounts = AccountService(
            store: store, hasher: hasher, clock: clock, configuration: configuration.accounts,
            sessionCache: SessionCache(
                capacity: configuration.sessions.cacheEntries,
                touchGranularityMilliseconds: Int64(configuration.sessions.lastActiveGranularitySeconds) * 1000),
            secrets: secrets)
        self.accounts = accounts
        let events = EventStream(
            store: store, signal: backend.eventSignal, clock: clock, configuration: configuration.events.stream)
        self.events = events

        let serving = ServingState()
        self.serving = serving
        let sessions = SessionsHandler(accounts: accounts)
        let health = HealthService(state: serving)
        var router = Router(services: [
            health, TenantsHandler(accounts: accounts), UsersHandler(accounts: accounts), sessions,
            TwoFactorHandler(accounts: accounts),
            EventsHandler(events: events),
            TeamsHandler(accounts: accounts),
        ])
        // Answered on the event loop: Validate on a cache hit, Health always.
        router.register(sessions.validateWithFastPath)
        router.register(health.checkWithFastPath)
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
                    // Shut down in reverse order: the server drains first,
                    // then the last last-active flush runs.
                    .init(
                        service: SessionMaintenance(
                            accounts: accounts, settings: configuration.sessions, logger: logger),
                        successTerminationBehavior: .ignore),
                    .init(
                        service: PurgeJob(
                            accounts: accounts, intervalSeconds: configuration.accounts.purgeIntervalSeconds,
                            logger: logger),
                        successTerminationBehavior: .ignore),
                    .init(service: server, successTerminationBehavior: .gracefullyShutdownGroup),
                    // Told first: wakes waiting long polls so the drain
                    // does not wait for them.
                    .init(
                        service: EventRetention(events: events, settings: configuration.events, logger: logger),
                        successTerminationBehavior: .ignore),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
    }

    /// Runs until SIGTERM, SIGINT or ``shutdown()``, then drains calls in
    /// flight and stops. The socket is listening before this first suspends
    /// on the services.
    public func run() async throws {
        do {
            try await server.start()
            try await group.run()
        } catch {
            await close()
            throw error
        }
        await close()
    }

    /// Closes the store and stops the hashing threads.
    private func close() async {
        await backend.close()
        hasher.shutdown()
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
