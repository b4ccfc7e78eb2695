public import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `sd_notify(3)`: datagrams to the `NOTIFY_SOCKET` systemd gave us
/// (`READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`).
public final class SystemdNotifier: Sendable {
    /// The socket path (a leading `@` is Linux's abstract namespace).
    public let path: String
    private let fd: CInt

    /// A notifier for `NOTIFY_SOCKET`, or nil when it is unset (not run by
    /// systemd with `Type=notify`).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> SystemdNotifier? {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.utf8.count < 108 else { return nil }
        guard path.hasPrefix("/") || path.hasPrefix("@") else { return nil }
        return SystemdNotifier(path: path)
    }

    private init?(path: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.path = path
    }

    deinit { close(fd) }

    /// Sends one notification (lines `KEY=value`). Returns whether it was
    /// sent; systemd not listening is not an error worth failing for.
    @discardableResult
    public func send(_ message: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.prefix(raw.count - 1).enumerated() { raw[index] = byte }
        }
        // Abstract names are not NUL-terminated: the length says where they end.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let payload = Array(message.utf8)
        let sent = payload.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        return sent == payload.count
    }

    /// The watchdog interval systemd expects pings within (`WATCHDOG_USEC`,
    /// for this process when `WATCHDOG_PID` is set), or nil when off.
    public static func watchdogInterval(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], Int32(pid) != getpid() { return nil }
        return .microseconds(Int64(clamping: usec))
    }
}
