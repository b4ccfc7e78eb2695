public import MoatRPC

/// Which calling processes may connect, and which of them are administrators.
///
/// A process may connect if its uid or gid is allowed; it is an
/// administrator if its uid or gid is an administrator one. Administrators
/// may always connect.
public struct AccessPolicy: Sendable, Equatable {
    /// Uids that may connect.
    public var allowedUIDs: Set<UInt32>
    /// Gids that may connect.
    public var allowedGIDs: Set<UInt32>
    /// Uids that are administrators.
    public var adminUIDs: Set<UInt32>
    /// Gids that are administrators.
    public var adminGIDs: Set<UInt32>

    /// Creates a policy.
    public init(
        allowedUIDs: Set<UInt32> = [], allowedGIDs: Set<UInt32> = [],
        adminUIDs: Set<UInt32> = [], adminGIDs: Set<UInt32> = []
    ) {
        self.allowedUIDs = allowedUIDs
        self.allowedGIDs = allowedGIDs
        self.adminUIDs = adminUIDs
        self.adminGIDs = adminGIDs
    }

    /// The default: root and the daemon's own uid are administrators; nobody
    /// else may connect until the configuration says so.
    public static func `default`(daemonUID: UInt32) -> AccessPolicy {
        AccessPolicy(adminUIDs: [0, daemonUID])
    }

    /// Whether the process is an administrator.
    public func isAdmin(_ peer: PeerCredentials) -> Bool {
        adminUIDs.contains(peer.uid) || adminGIDs.contains(peer.gid)
    }

    /// The caller for a peer, or nil when it may not connect.
    public func admit(_ peer: PeerCredentials) -> Caller? {
        let admin = isAdmin(peer)
        guard admin || allowedUIDs.contains(peer.uid) || allowedGIDs.contains(peer.gid) else {
            return nil
        }
        return Caller(credentials: peer, isAdmin: admin)
    }
}
