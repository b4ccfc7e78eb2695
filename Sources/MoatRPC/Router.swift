/// The method table: maps wire paths to methods and enforces each method's
/// declared access before its handler runs.
public struct Router: Sendable {
    private var table: [String: ServerMethod] = [:]

    /// Creates a router serving the given services. A path registered twice
    /// keeps the last registration.
    public init(services: [any RPCService] = []) {
        for service in services { register(service) }
    }

    /// Adds every method of a service.
    public mutating func register(_ service: any RPCService) {
        for method in service.methods { register(method) }
    }

    /// Adds (or replaces) one method.
    public mutating func register(_ method: ServerMethod) {
        table[method.descriptor.path] = method
    }

    /// The method for a wire path, or nil.
    public func method(for path: String) -> ServerMethod? { table[path] }

    /// Every registered path, sorted.
    public var paths: [String] { table.keys.sorted() }

    /// Resolves a path and checks the caller may call it.
    ///
    /// - Throws: UNIMPLEMENTED for an unknown path, PERMISSION_DENIED when an
    ///   administrator method is called by someone else, UNAUTHENTICATED when
    ///   a user method comes without a session token.
    public func resolve(path: String, caller: Caller, authorization: String) throws -> ServerMethod {
        guard let method = table[path] else {
            throw RPCError(
                code: .unimplemented, message: "unknown method \(Self.printable(path))",
                reason: RPCError.Reason.unknownMethod)
        }
        try Self.authorize(method.descriptor, caller: caller, authorization: authorization)
        return method
    }

    /// Enforces a method's declared access for a caller.
    public static func authorize(_ method: MethodDescriptor, caller: Caller, authorization: String) throws {
        switch method.access {
        case .public:
            return
        case .admin:
            guard caller.isAdmin else {
                throw RPCError(
                    code: .permissionDenied, message: "\(method.path) is for administrator callers",
                    reason: RPCError.Reason.adminRequired)
            }
        case .adminOrUser:
            guard caller.isAdmin || !authorization.isEmpty else {
                throw RPCError(
                    code: .unauthenticated,
                    message: "\(method.path) needs a session token or an administrator caller",
                    reason: RPCError.Reason.sessionRequired)
            }
        case .user:
            guard !authorization.isEmpty else {
                throw RPCError(
                    code: .unauthenticated, message: "\(method.path) needs a session token",
                    reason: RPCError.Reason.sessionRequired)
            }
        }
    }

    /// A method path as it may appear in an error message: bounded and
    /// printable, whatever the client sent.
    static func printable(_ path: String) -> String {
        let clipped = path.unicodeScalars.prefix(128).map { scalar -> Character in
            scalar.properties.isWhitespace || scalar.value < 0x20 || scalar.value == 0x7F ? "?" : Character(scalar)
        }
        return "\"" + String(clipped) + (path.unicodeScalars.count > 128 ? "…" : "") + "\""
    }
}
