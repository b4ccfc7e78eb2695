public import MoatRPC
public import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The layout of Linux's `struct ucred` (pid, uid, gid), which Swift does not
/// import without `_GNU_SOURCE`.
struct LinuxPeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// A connection whose peer could not be identified.
public struct PeerCredentialsUnavailable: Error, Sendable {}

extension PeerCredentials {
    /// Reads the peer of a Unix-socket channel with SO_PEERCRED.
    public static func read(from channel: any Channel) -> EventLoopFuture<PeerCredentials> {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(PeerCredentialsUnavailable())
        }
        let future: EventLoopFuture<LinuxPeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { PeerCredentials(uid: $0.uid, gid: $0.gid, pid: $0.pid) }
        #else
        return channel.eventLoop.makeFailedFuture(PeerCredentialsUnavailable())
        #endif
    }
}
