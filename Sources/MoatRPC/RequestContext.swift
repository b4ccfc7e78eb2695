/// The process on the other end of a connection, from SO_PEERCRED.
public struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32

    public init(uid: UInt32, gid: UInt32, pid: Int32) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
    }

    public var description: String { "uid=\(uid) gid=\(gid) pid=\(pid)" }
}

/// The calling process as the server sees it: its credentials and whether it
/// is an administrator.
public struct Caller: Sendable, Hashable {
    public var credentials: PeerCredentials
    public var isAdmin: Bool

    public init(credentials: PeerCredentials, isAdmin: Bool) {
        self.credentials = credentials
        self.isAdmin = isAdmin
    }
}

/// Everything a handler knows about the call besides its request message.
public struct RequestContext: Sendable {
    /// The request id chosen by the client (unique per connection).
    public var requestID: UInt64
    /// The method being called.
    public var method: MethodDescriptor
    /// The calling process.
    public var caller: Caller
    /// The tenant named by the request; empty for methods that are not
    /// tenant-scoped.
    public var tenant: String
    /// The end user's session token, if any. Never log it.
    public var authorization: String
    /// Call metadata (`client-ip`, `user-agent`, `request-id`).
    public var metadata: [String: String]
    /// When the call must be answered by.
    public var deadline: ContinuousClock.Instant

    public init(
        requestID: UInt64, method: MethodDescriptor, caller: Caller, tenant: String = "",
        authorization: String = "", metadata: [String: String] = [:],
        deadline: ContinuousClock.Instant
    ) {
        self.requestID = requestID
        self.method = method
        self.caller = caller
        self.tenant = tenant
        self.authorization = authorization
        self.metadata = metadata
        self.deadline = deadline
    }

    /// The `request-id` metadata if the caller sent one, for log correlation.
    public var correlationID: String? { metadata["request-id"] }
}
