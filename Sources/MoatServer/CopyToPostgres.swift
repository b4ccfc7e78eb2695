import Foundation
public import Logging
public import MoatStore

/// `moatd --copy-to-postgres`: moves a stopped SQLite deployment (the
/// data directory's moat.db) into the empty PostgreSQL database named by
/// `store.postgres_url` (password from `store.postgres_password_file` or
/// libpq's environment, never argv). See ``SQLiteToPostgresCopy``.
public enum CopyToPostgres {
    /// Copies, and returns the rows per table on both sides.
    public static func run(configuration: MoatConfiguration, logger: Logger) async throws -> SQLiteToPostgresCopy.Report {
        guard let url = configuration.store.postgresURL else {
            throw DaemonStartError("store.postgres_url: required with --copy-to-postgres")
        }
        let password = try configuration.store.postgresPasswordFile.map(StoreBackend.readPassword)
        let path = (configuration.dataDirectory as NSString).appendingPathComponent(MoatDaemon.databaseFileName)
        let socket = configuration.socketPath
        if FileManager.default.fileExists(atPath: socket), isListening(socket) {
            throw DaemonStartError("a moatd is serving \(socket): stop it before copying its database")
        }
        return try await SQLiteToPostgresCopy.copy(
            sqlitePath: path, postgres: PostgresConfiguration(url: url, password: password, connections: 1), logger: logger)
    }

    /// Whether something accepts connections on the Unix socket at `path`.
    private static func isListening(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return connected == 0
    }
}
