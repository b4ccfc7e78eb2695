/// A rule of the domain said no. MoatServer maps `kind` to a wire status
/// code in one place; `reason` travels as is and never changes meaning.
/// Messages never contain secrets.
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of failure; each maps to one status code.
    public enum Kind: Sendable, Equatable {
        case invalidArgument, notFound, alreadyExists, permissionDenied, unauthenticated
        case failedPrecondition, resourceExhausted, unavailable, `internal`
    }

    public var kind: Kind
    public var reason: String
    public var message: String
    public var details: [String: String]

    public init(_ kind: Kind, _ reason: String, _ message: String, details: [String: String] = [:]) {
        self.kind = kind
        self.reason = reason
        self.message = message
        self.details = details
    }

    public var description: String { "\(kind) (\(reason)): \(message)" }
}

extension DomainError {
    static func invalid(_ reason: String, _ message: String) -> DomainError { .init(.invalidArgument, reason, message) }

    /// The one answer to a failed sign-in, whatever failed.
    static let invalidCredentials = DomainError(.unauthenticated, "INVALID_CREDENTIALS", "email or password is wrong")
    /// The one answer to a bad session token, whatever was wrong with it.
    static let sessionInvalid = DomainError(.unauthenticated, "SESSION_INVALID", "the session is not valid")
    static let tenantNotFound = DomainError(.notFound, "TENANT_NOT_FOUND", "no such tenant")
    static let userNotFound = DomainError(.notFound, "USER_NOT_FOUND", "no such user")
    static let tenantRequired = DomainError(.invalidArgument, "TENANT_REQUIRED", "the request names no tenant")
    static let forbidden = DomainError(.permissionDenied, "ROLE_REQUIRED", "your role does not allow this")
}
