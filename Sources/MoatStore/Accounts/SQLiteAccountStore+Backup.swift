import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `open(2)`, out of reach of `SQLiteAccountStore.open` inside the extension.
private func openFile(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    open(path, flags, mode)
}

/// `close(2)`, likewise.
private func closeFile(_ fd: Int32) {
    close(fd)
}

/// What ``SQLiteAccountStore/backup(to:)`` wrote.
public struct BackupResult: Sendable, Equatable {
    /// The backup file.
    public var path: String
    /// Its size in bytes.
    public var sizeBytes: UInt64
    /// The newest event sequence assigned when the backup was taken (every
    /// event up to it that was not pruned is in the file).
    public var lastEventSequence: Int64
}

extension SQLiteAccountStore {
    /// Writes a consistent copy of the database to `path` while the daemon
    /// serves: `VACUUM INTO` runs on the writer thread between batches, so
    /// the copy holds exactly the writes committed before it began. The file
    /// is created with mode 0600 (as a hidden sibling, then renamed into
    /// place), fsynced, and its directory fsynced. Refuses an existing
    /// `path`.
    public func backup(to path: String) async throws -> BackupResult {
        try await database.withWriterConnection { connection in
            try Self.writeBackup(connection, to: path)
        }
    }

    private static func writeBackup(_ connection: SQLiteConnection, to path: String) throws -> BackupResult {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let partial = (directory as NSString).appendingPathComponent(".\(name).partial-\(getpid())")
        var info = stat()
        guard lstat(path, &info) != 0 else { throw backupError(.backupExists, "\(path) already exists") }
        // Created empty with mode 0600 first: VACUUM INTO fills an empty file
        // and keeps its mode, so the copy is never readable by others.
        let fd = openFile(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw backupError(.backupFailed, "cannot create \(partial): \(lastError())") }
        closeFile(fd)
        do {
            let sequence = try connection.queryFirst(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) AS seq"
            ) { row in try row.int64("seq") } ?? 0
            try connection.withStatement("VACUUM INTO ?") { statement in
                try statement.bind([partial])
                _ = try statement.run()
            }
            try fsyncFile(partial)
            guard rename(partial, path) == 0 else {
                throw backupError(.backupFailed, "cannot rename the backup into place: \(lastError())")
            }
            try fsyncFile(directory.isEmpty ? "." : directory)
            guard stat(path, &info) == 0 else { throw backupError(.backupFailed, "cannot stat \(path): \(lastError())") }
            return BackupResult(path: path, sizeBytes: UInt64(info.st_size), lastEventSequence: sequence)
        } catch {
            unlink(partial)
            throw error
        }
    }

    private static func fsyncFile(_ path: String) throws {
        let fd = openFile(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw backupError(.backupFailed, "cannot open \(path): \(lastError())") }
        defer { closeFile(fd) }
        guard fsync(fd) == 0 else { throw backupError(.backupFailed, "cannot fsync \(path): \(lastError())") }
    }

    private static func lastError() -> String { String(cString: strerror(errno)) }

    private static func backupError(_ reason: StoreError.Reason, _ message: String) -> StoreError {
        StoreError(reason, message: message)
    }
}

extension StoreError.Reason {
    /// The backup's target file exists.
    public static let backupExists = StoreError.Reason(rawValue: "BACKUP_EXISTS")
    /// The backup could not be written.
    public static let backupFailed = StoreError.Reason(rawValue: "BACKUP_FAILED")
}

/// What a backup file holds, read without changing it.
public struct BackupInspection: Sendable, Equatable {
    /// `PRAGMA integrity_check` answered `ok`.
    public var integrityOK: Bool
    /// The first problems `integrity_check` reported (empty when ok).
    public var problems: [String]
    /// The newest event sequence in the file.
    public var lastEventSequence: Int64
    /// A value of the `meta` table (the key fingerprint, rotation state).
    public var meta: [String: String]
}

extension SQLiteAccountStore {
    /// Opens `path` read-only and checks it: `PRAGMA integrity_check`, the
    /// newest event sequence and the `meta` table. Throws when it is not an
    /// SQLite database.
    public static func inspectBackup(at path: String) throws -> BackupInspection {
        let connection = try SQLiteConnection(path: path, flags: .readOnly)
        defer { connection.close() }
        let problems = try connection.query("PRAGMA integrity_check") { row in try row.string(at: 0) }
        let sequence = try connection.queryFirst(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)"
        ) { row in try row.int64(at: 0) } ?? 0
        var meta: [String: String] = [:]
        let rows = try connection.query("SELECT key, value FROM meta") { row in
            (try row.string("key"), try row.blob("value"))
        }
        for (key, value) in rows { meta[key] = String(decoding: value, as: UTF8.self) }
        let ok = problems == ["ok"]
        return BackupInspection(
            integrityOK: ok, problems: ok ? [] : Array(problems.prefix(10)), lastEventSequence: sequence, meta: meta)
    }
}
