/// Who may call a method.
public enum MethodAccess: String, Sendable, Hashable, CaseIterable {
    /// Any caller whose uid/gid may connect.
    case `public`
    /// Acts for a signed-in end user: the request must carry a session token
    /// in `authorization`; the service validates it.
    case user
    /// Administrator callers only (uid/gid named as administrators).
    case admin
    /// Administrator callers, or anyone acting with a session token (the
    /// service then checks the session's role). Declared in `.proto` as
    /// `@access admin_or_user`.
    case adminOrUser = "admin_or_user"
}

/// Names one RPC method and declares who may call it. Generated from
/// `proto/` for every `rpc`.
public struct MethodDescriptor: Sendable, Hashable, CustomStringConvertible {
    /// The fully qualified service name, e.g. `moat.v1.Health`.
    public let service: String
    /// The method name, e.g. `Check`.
    public let method: String
    /// Who may call it.
    public let access: MethodAccess
    /// The wire path, e.g. `/moat.v1.Health/Check`.
    public let path: String

    /// Creates a descriptor.
    public init(service: String, method: String, access: MethodAccess) {
        self.service = service
        self.method = method
        self.access = access
        self.path = "/\(service)/\(method)"
    }

    public var description: String { path }
}
