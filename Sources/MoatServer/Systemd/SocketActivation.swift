public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// systemd socket activation (`sd_listen_fds(3)`): the listening socket a
/// `.socket` unit (or `systemd-socket-activate`) hands over as fd 3.
public enum SocketActivation {
    /// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
    public static let firstDescriptor: CInt = 3

    /// Takes the listening socket passed in `LISTEN_FDS` when `LISTEN_PID`
    /// is this process, and removes the `LISTEN_*` variables so a child
    /// never takes it again. Returns nil when nothing was passed.
    ///
    /// Throws when the variables are malformed or fd 3 is not a listening
    /// Unix stream socket, so a wrong unit fails at start, not at the first
    /// call.
    public static func takeListeningSocket(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> CInt? {
        guard let pidText = environment["LISTEN_PID"], let fdsText = environment["LISTEN_FDS"] else { return nil }
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        guard let pid = Int32(pidText), let count = Int(fdsText), count >= 0 else {
            throw DaemonStartError("LISTEN_PID=\(pidText) LISTEN_FDS=\(fdsText) are not numbers")
        }
        guard pid == getpid() else { return nil }
        guard count >= 1 else { return nil }
        guard count == 1 else {
            throw DaemonStartError("systemd passed \(count) sockets; moatd serves exactly one (ListenStream= once)")
        }
        let fd = firstDescriptor
        try checkListeningUnixStream(fd)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return fd
    }

    /// The path the socket is bound to (what the unit's `ListenStream=`
    /// names), or nil for an unnamed or abstract socket.
    public static func boundPath(of fd: CInt) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        let path = withUnsafeBytes(of: &address.sun_path) { raw -> String in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
        return path.hasPrefix("/") ? path : nil
    }

    static func checkListeningUnixStream(_ fd: CInt) throws {
        var type: CInt = 0
        var accepting: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else {
            throw DaemonStartError("fd \(fd) from systemd is not a socket: \(String(cString: strerror(errno)))")
        }
        length = socklen_t(MemoryLayout<CInt>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length)
        var address = sockaddr_storage()
        var addressLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &addressLength) }
        }
        guard named == 0, CInt(address.ss_family) == AF_UNIX, type == CInt(SOCK_STREAM.rawValue), accepting != 0 else {
            throw DaemonStartError(
                "fd \(fd) from systemd is not a listening Unix stream socket (use ListenStream=/path in moatd.socket)")
        }
    }
}
