import Foundation
import MoatStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `moatd --restore FILE`: puts a backup (``SQLiteAccountStore/backup(to:)``)
/// in place as the database of an empty data directory.
public enum Restore {
    /// What a restore did.
    public struct Result: Sendable {
        /// The database file written.
        public var databasePath: String
        /// Its size.
        public var sizeBytes: UInt64
        /// The newest event sequence in it.
        public var lastEventSequence: Int64
        /// The master-key fingerprint the database was created with.
        public var keyFingerprint: String?
        /// Whether `master.key` is already in the directory (and matches).
        public var keyPresent: Bool
    }

    /// Files a data directory may already hold: the master key (and keys
    /// kept by a rotation), which the backup does not contain.
    static func isKeyFile(_ name: String) -> Bool {
        name == KeyFile.fileName || (name.hasPrefix("master.") && name.hasSuffix(".key"))
    }

    /// Checks the backup (`PRAGMA integrity_check`), refuses a data
    /// directory holding anything but key files, then copies the backup in
    /// as `moat.db` (mode 0600, fsynced, renamed into place). When
    /// `master.key` is present it must be the backup's key.
    public static func restore(backup: String, dataDirectory: String) throws -> Result {
        var info = stat()
        guard stat(backup, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw DaemonStartError("cannot read backup \(backup): \(String(cString: strerror(errno)))")
        }
        try MoatDaemon.prepareDataDirectory(dataDirectory)
        let present = (try? FileManager.default.contentsOfDirectory(atPath: dataDirectory)) ?? []
        let other = present.filter { !isKeyFile($0) }.sorted()
        guard other.isEmpty else {
            throw DaemonStartError(
                "data directory \(dataDirectory) is not empty (\(other.prefix(5).joined(separator: ", "))); "
                    + "restore only into an empty one (the master key may be there)")
        }
        let inspection: BackupInspection
        do {
            inspection = try SQLiteAccountStore.inspectBackup(at: backup)
        } catch {
            throw DaemonStartError("\(backup) is not a Moat backup: \(error)")
        }
        guard inspection.integrityOK else {
            throw DaemonStartError(
                "\(backup) fails PRAGMA integrity_check: \(inspection.problems.joined(separator: "; "))")
        }
        let fingerprint = inspection.meta[MoatDaemon.keyFingerprintKey]
        var keyPresent = false
        if present.contains(KeyFile.fileName) {
            let key = try KeyFile.load(directory: dataDirectory, mayCreate: false)
            if let fingerprint, fingerprint != key.fingerprint {
                throw DaemonStartError(
                    "master.key in \(dataDirectory) (fingerprint \(key.fingerprint)) is not the key of this backup (\(fingerprint))")
            }
            keyPresent = true
        }
        let target = (dataDirectory as NSString).appendingPathComponent(MoatDaemon.databaseFileName)
        let partial = target + ".restoring"
        try copy(backup, to: partial)
        guard rename(partial, target) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(partial)
            throw DaemonStartError("cannot move the restored database into place: \(message)")
        }
        let directory = open(dataDirectory, O_RDONLY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
        return Result(
            databasePath: target, sizeBytes: UInt64(info.st_size), lastEventSequence: inspection.lastEventSequence,
            keyFingerprint: fingerprint, keyPresent: keyPresent)
    }

    private static func copy(_ source: String, to target: String) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw DaemonStartError("cannot open \(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw DaemonStartError("cannot create \(target): \(String(cString: strerror(errno)))") }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var failure: String?
        while failure == nil {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                failure = "cannot read \(source): \(String(cString: strerror(errno)))"
                break
            }
            var offset = 0
            while offset < count {
                let written = buffer.withUnsafeBytes { raw in write(output, raw.baseAddress.map { $0 + offset }, count - offset) }
                if written <= 0 {
                    failure = "cannot write \(target): \(String(cString: strerror(errno)))"
                    break
                }
                offset += written
            }
        }
        if failure == nil, fsync(output) != 0 { failure = "cannot fsync \(target): \(String(cString: strerror(errno)))" }
        close(output)
        if let failure {
            unlink(target)
            throw DaemonStartError(failure)
        }
    }
}
