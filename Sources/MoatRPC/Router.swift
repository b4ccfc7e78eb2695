/// The method table: maps wire paths to methods and enforces each method's
/// declared access before its handler runs.
public struct Router: Sendable {
    private var table: [String: ServerMethod] = [:]

    /// A registration the router refused.
    public enum RegistrationError: Error, Equatable {
        /// The path is registered already; use ``Router/replace(_:)`` to
        /// override it on purpose.
        case duplicate(path: String)
        /// ``Router/replace(_:)`` of a path nothing registered.
        case nothingToReplace(path: String)
    }

    /// Creates a router serving the given services.
    ///
    /// - Throws: ``RegistrationError/duplicate(path:)`` if two methods
    ///   share a path.
    public init(services: [any RPCService] = []) throws(RegistrationError) {
        for service in services { try register(service) }
    }

    /// Adds every method of a service.
    public mutating func register(_ service: any RPCService) throws(RegistrationError) {
        for method in service.methods { try register(method) }
    }

    /// Adds one method. A second registration of a path is refused: an
    /// override must say so with ``replace(_:)``.
    public mutating func register(_ method: ServerMethod) throws(RegistrationError) {
        let path = method.descriptor.path
        guard table[path] == nil else { throw .duplicate(path: path) }
        table[path] = method
    }

    /// Replaces a registered method, declared as such (e.g. a method's
    /// generated entry by one with a synchronous fast path).
    public mutating func replace(_ method: ServerMethod) throws(RegistrationError) {
        let path = method.descriptor.path
        guard table[path] != nil else { throw .nothingToReplace(path: path) }
        table[path] = method
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
