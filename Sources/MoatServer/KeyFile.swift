import Foundation
import MoatCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The master key: 32 random bytes in `<data dir>/master.key` (mode 0600),
/// outside the database, that encrypts secrets at rest.
///
/// The database records the key's fingerprint on first start, so moatd
/// refuses to start with the key missing (secrets would be unreadable) or
/// replaced by another one.
public struct KeyFile: Sendable {
    /// The key bytes. Never log them.
    public let key: [UInt8]
    /// A short public identifier of the key: the first 8 bytes of its
    /// SHA-256, hex. Stored with every ciphertext and in the database.
    public let fingerprint: String
    /// Whether this start created the file.
    public let created: Bool

    /// The file name inside the data directory.
    public static let fileName = "master.key"

    /// Loads the key, creating it when missing and `mayCreate` (the
    /// database has no fingerprint yet). `name` is the file inside
    /// `directory` (a rotation keeps the old key as `master.<id>.key`).
    public static func load(directory: String, mayCreate: Bool, name: String = fileName) throws -> KeyFile {
        let path = (directory as NSString).appendingPathComponent(name)
        var info = stat()
        if lstat(path, &info) != 0 {
            guard errno == ENOENT else { throw DaemonStartError("cannot read \(path): \(String(cString: strerror(errno)))") }
            guard mayCreate else {
                throw DaemonStartError(
                    "\(path) is missing but the database was created with a master key; restore the key file (secrets cannot be read without it)"
                )
            }
            return try create(path)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw DaemonStartError("\(path) is not a regular file")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw DaemonStartError(
                "\(path) is readable or writable by others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        guard info.st_uid == getuid() else {
            throw DaemonStartError("\(path) is owned by uid \(info.st_uid), not by moatd's uid \(getuid())")
        }
        guard let data = FileManager.default.contents(atPath: path), data.count == 32 else {
            throw DaemonStartError("\(path) must hold exactly 32 bytes")
        }
        let key = [UInt8](data)
        return KeyFile(key: key, fingerprint: fingerprint(of: key), created: false)
    }

    static func create(_ path: String) throws -> KeyFile {
        let key = try SecureRandom.bytes(32)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DaemonStartError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = key.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == 32, fsync(fd) == 0 else {
            unlink(path)
            throw DaemonStartError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        return KeyFile(key: key, fingerprint: fingerprint(of: key), created: true)
    }

    /// The first 8 bytes of the key's SHA-256, hex.
    public static func fingerprint(of key: [UInt8]) -> String {
        let digest = (try? SHA256.hash(key)) ?? []
        return digest.prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}
