import Foundation
import Logging
import MoatCore
import MoatStore

/// The store moatd runs on, per `store.backend`: the SQLite file in the data
/// directory, or a PostgreSQL database shared with other instances.
enum StoreBackend: Sendable {
    case sqlite(SQLiteAccountStore)
    case postgres(PostgresAccountStore)

    /// Opens (and migrates) the configured store.
    static func open(configuration: MoatConfiguration, logger: Logger) async throws -> StoreBackend {
        switch configuration.store.backend {
        case .sqlite:
            let path = (configuration.dataDirectory as NSString).appendingPathComponent(MoatDaemon.databaseFileName)
            return .sqlite(
                try await SQLiteAccountStore.open(
                    path: path, synchronous: configuration.store.synchronous == .full ? .full : .normal,
                    readerCount: configuration.store.readers, encoder: ProtobufEventEncoder(), logger: logger))
        case .postgres:
            guard let url = configuration.store.postgresURL else {
                throw DaemonStartError("store.postgres_url: required with store.backend = \"postgres\"")
            }
            let password = try configuration.store.postgresPasswordFile.map(readPassword)
            do {
                return .postgres(
                    try await PostgresAccountStore.open(
                        configuration: PostgresConfiguration(
                            url: url, password: password, connections: configuration.store.postgresConnections,
                            fence: .milliseconds(configuration.cluster.fenceMilliseconds)),
                        encoder: ProtobufEventEncoder(), logger: logger))
            } catch let error as StoreError {
                throw DaemonStartError("cannot open the PostgreSQL store: \(error)")
            }
        }
    }

    /// The first line of the password file (mode bits are the operator's
    /// business, as for `PGPASSFILE`; the value is never logged).
    static func readPassword(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DaemonStartError("store.postgres_password_file: cannot read \(path)")
        }
        let text = String(decoding: data, as: UTF8.self)
        let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let password = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        guard !password.isEmpty else { throw DaemonStartError("store.postgres_password_file: \(path) is empty") }
        return password
    }

    var store: any AccountStore {
        switch self {
        case .sqlite(let store): store
        case .postgres(let store): store
        }
    }

    var eventSignal: EventSignal {
        switch self {
        case .sqlite(let store): store.eventSignal
        case .postgres(let store): store.eventSignal
        }
    }

    /// The store as master-key loading and rotation see it.
    var keyStore: any MasterKeyStore {
        switch self {
        case .sqlite(let store): store
        case .postgres(let store): store
        }
    }

    /// A write transaction (empty on SQLite, one `SELECT 1` on PostgreSQL):
    /// returns once the store's writer (the SQLite writer thread, or a
    /// PostgreSQL connection) took and committed one (the watchdog's probe).
    func probeWrite() async throws {
        switch self {
        case .sqlite(let store): try await store.database.write { _ in }
        // A body that sends nothing sends no BEGIN either: ask the server.
        case .postgres(let store): try await store.database.write { db in try Self.askServer(db) }
        }
    }

    /// Where the fleet-wide background jobs run: every run with SQLite; on
    /// PostgreSQL one instance at a time (an advisory lock per job), the
    /// others skipping the run.
    func jobGate(logger: Logger) -> JobGate {
        switch self {
        case .sqlite: return .always
        case .postgres(let store):
            return JobGate { job, body in
                if try await store.exclusively(job, body) == nil {
                    logger.debug("another instance is running the job; skipped", metadata: ["moat.job": "\(job)"])
                }
            }
        }
    }

    /// A read transaction (the health probe; empty on SQLite, one `SELECT 1`
    /// on PostgreSQL): returns once the store answered one; on PostgreSQL
    /// this reconnects a dropped pool connection.
    func probeRead() async throws {
        switch self {
        case .sqlite(let store): try await store.database.read { _ in }
        case .postgres(let store): try await store.database.read { db in try Self.askServer(db) }
        }
    }

    /// One round trip to the PostgreSQL server (a probe's transaction must
    /// reach it: an empty one is never sent).
    private static func askServer(_ db: PostgresQuerying) throws {
        _ = try db.queryFirst("SELECT 1 AS one", []) { try $0.int64("one") }
    }

    /// How often Health's store probe runs: every second on PostgreSQL (a
    /// server that can go away), every 5 s on SQLite (a local file).
    var probeInterval: Duration {
        switch self {
        case .sqlite: .seconds(5)
        case .postgres: .seconds(1)
        }
    }

    func close() async {
        switch self {
        case .sqlite(let store): await store.close()
        case .postgres(let store): await store.close()
        }
    }
}
