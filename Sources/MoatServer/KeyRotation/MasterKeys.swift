import Foundation
import Logging
import MoatCore
import MoatStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The master keys in the data directory and what the database records
/// about them, including a rotation in progress.
///
/// Files: `master.key` is the key new secrets are sealed under. During a
/// rotation the previous key is kept as `master.<id>.key` until nothing is
/// sealed under it; a new key is staged as `master.next.key` before the
/// database names it. `meta` holds `master_key_fingerprint` (the current
/// key), `key_rotation_from` (the key being retired, during a rotation) and
/// `retired_key_fingerprints` (every key retired so far, comma-separated).
struct MasterKeys {
    static let currentKey = "master_key_fingerprint"
    static let rotationFrom = "key_rotation_from"
    static let retiredKeys = "retired_key_fingerprints"
    static let progress = "key_rotation_resealed"
    static let stagedFileName = "master.next.key"

    static func retainedFileName(_ id: String) -> String { "master.\(id).key" }

    /// The keyring to serve with, and the key a rotation still retires.
    struct Loaded {
        var keyring: SecretKeyring
        var current: KeyFile
        var retiring: KeyFile?
    }

    /// Loads the keys for `store`, finishing a rotation step a crash
    /// interrupted, and refuses keys that do not belong to the database.
    static func load(directory: String, store: any MasterKeyStore, logger: Logger) async throws -> Loaded {
        let meta = try await store.metaStrings([currentKey, rotationFrom, retiredKeys])
        let recorded = meta[currentKey]
        let retired = (meta[retiredKeys] ?? "").split(separator: ",").map(String.init)
        if let from = meta[rotationFrom], let recorded {
            return try await resume(from: from, to: recorded, directory: directory, logger: logger)
        }
        let key = try KeyFile.load(directory: directory, mayCreate: recorded == nil)
        if let recorded, recorded != key.fingerprint {
            if retired.contains(key.fingerprint) {
                throw DaemonStartError(
                    "master.key (fingerprint \(key.fingerprint)) is a retired key: a key rotation replaced it with "
                        + "\(recorded), and nothing in the database is sealed under it any more; put the current "
                        + "master.key (fingerprint \(recorded)) back")
            }
            throw DaemonStartError(
                "master.key (fingerprint \(key.fingerprint)) is not the key this database was created with (\(recorded))")
        }
        if recorded == nil {
            // Instances starting together on an empty PostgreSQL: the first
            // fingerprint recorded wins, the others refuse their key.
            let winner = try await store.recordMetaIfAbsent(currentKey, key.fingerprint)
            if winner != key.fingerprint {
                throw DaemonStartError(
                    "master.key (fingerprint \(key.fingerprint)) is not the key this database was created with (\(winner))")
            }
        }
        if key.created { logger.notice("created master key", metadata: ["moat.key_id": "\(key.fingerprint)"]) }
        // Left by a rotation that crashed before the database named the new
        // key, or by one that retired a key but had not deleted it yet.
        unlinkIfPresent(directory, stagedFileName)
        unlinkIfPresent(directory, retainedFileName(key.fingerprint))
        for id in retired { unlinkIfPresent(directory, retainedFileName(id)) }
        return Loaded(keyring: SecretKeyring(current: (id: key.fingerprint, key: key.key)), current: key, retiring: nil)
    }

    /// A rotation from `from` to `to` is recorded: the new key must be (or
    /// be staged to become) `master.key`, and the old one kept.
    private static func resume(from: String, to: String, directory: String, logger: Logger) async throws -> Loaded {
        var current = try KeyFile.load(directory: directory, mayCreate: false)
        if current.fingerprint == from {
            // Crashed after the database named the new key, before the
            // staged file was renamed into place.
            let staged = try KeyFile.load(directory: directory, mayCreate: false, name: stagedFileName)
            guard staged.fingerprint == to else {
                throw DaemonStartError(
                    "a key rotation from \(from) to \(to) is recorded but \(stagedFileName) holds \(staged.fingerprint)")
            }
            try move(directory, stagedFileName, to: KeyFile.fileName)
            current = staged
        }
        guard current.fingerprint == to else {
            throw DaemonStartError(
                "master.key (fingerprint \(current.fingerprint)) is not the key this database uses (\(to); a rotation from \(from) is in progress)")
        }
        let old: KeyFile
        do {
            old = try KeyFile.load(directory: directory, mayCreate: false, name: retainedFileName(from))
        } catch {
            throw DaemonStartError(
                "a key rotation from \(from) is in progress but \(retainedFileName(from)) cannot be loaded "
                    + "(\(error)); secrets still sealed under it cannot be read without it")
        }
        guard old.fingerprint == from else {
            throw DaemonStartError("\(retainedFileName(from)) holds key \(old.fingerprint), not \(from)")
        }
        logger.notice("resuming master-key rotation", metadata: ["moat.key_id": "\(to)", "moat.retiring_key_id": "\(from)"])
        return Loaded(
            keyring: SecretKeyring(current: (id: current.fingerprint, key: current.key), retired: [(id: from, key: old.key)]),
            current: current, retiring: old)
    }

    static func path(_ directory: String, _ name: String) -> String {
        (directory as NSString).appendingPathComponent(name)
    }

    static func unlinkIfPresent(_ directory: String, _ name: String) {
        if unlink(path(directory, name)) == 0 { syncDirectory(directory) }
    }

    static func move(_ directory: String, _ name: String, to target: String) throws {
        guard rename(path(directory, name), path(directory, target)) == 0 else {
            throw DaemonStartError("cannot rename \(name) to \(target): \(String(cString: strerror(errno)))")
        }
        syncDirectory(directory)
    }

    /// Makes renames and unlinks in the directory durable.
    static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
