/// The error a call ends with: a status code, a human-readable message and a
/// stable machine-readable reason.
///
/// The message and reason travel to the caller, so they must never contain a
/// secret. `cause` stays inside the process (for logs) and never leaves it.
public struct RPCError: Error, Sendable, CustomStringConvertible {
    /// The status code.
    public var code: Code
    /// A human-readable message for the caller.
    public var message: String
    /// A stable machine-readable reason, e.g. `PASSWORD_TOO_SHORT`.
    public var reason: String
    /// Extra machine-readable facts, e.g. `retry_after_seconds`.
    public var details: [String: String]
    /// The underlying error, if any. Logged, never sent.
    public var cause: (any Error)?

    /// Creates an error.
    public init(
        code: Code, message: String, reason: String = "", details: [String: String] = [:],
        cause: (any Error)? = nil
    ) {
        self.code = code
        self.message = message
        self.reason = reason
        self.details = details
        self.cause = cause
    }

    public var description: String {
        reason.isEmpty ? "\(code): \(message)" : "\(code) (\(reason)): \(message)"
    }
}

extension RPCError {
    /// Creates an error with one of the runtime's own stable reasons.
    public init(
        code: Code, message: String, reason: Reason, details: [String: String] = [:], cause: (any Error)? = nil
    ) {
        self.init(code: code, message: message, reason: reason.rawValue, details: details, cause: cause)
    }

    /// Stable reasons used by the RPC runtime and the transport themselves.
    /// Part of the wire contract: a renamed case is a visible change (the
    /// server's reason catalog test pins every value).
    public enum Reason: String, Sendable, CaseIterable {
        /// No method has this path (UNIMPLEMENTED).
        case unknownMethod = "UNKNOWN_METHOD"
        /// The payload does not decode as the method's request message.
        case invalidPayload = "INVALID_PAYLOAD"
        /// The method is for administrator callers.
        case adminRequired = "ADMIN_REQUIRED"
        /// The method needs a session token.
        case sessionRequired = "SESSION_REQUIRED"
        /// The call did not finish within its deadline.
        case deadlineExceeded = "DEADLINE_EXCEEDED"
        /// The server is draining for shutdown.
        case shuttingDown = "SHUTTING_DOWN"
        /// An unexpected failure; the detail stays in the server's log.
        case internalError = "INTERNAL_ERROR"
        /// A frame is over the size limit.
        case frameTooLarge = "FRAME_TOO_LARGE"
        /// A frame is not a valid envelope.
        case malformedFrame = "MALFORMED_FRAME"
        /// A started frame was not finished in time.
        case frameTimeout = "FRAME_TIMEOUT"
        /// The connection ended inside a frame.
        case truncatedFrame = "TRUNCATED_FRAME"
        /// The response would be over the frame size limit.
        case responseTooLarge = "RESPONSE_TOO_LARGE"
        /// The peer's uid and gids may not connect.
        case callerNotAllowed = "CALLER_NOT_ALLOWED"
        /// The server is at its connection limit.
        case tooManyConnections = "TOO_MANY_CONNECTIONS"
        /// A request id is zero.
        case invalidRequestID = "INVALID_REQUEST_ID"
        /// A request id is already in flight on the connection.
        case duplicateRequestID = "DUPLICATE_REQUEST_ID"
        /// The connection closed before the answer arrived.
        case connectionClosed = "CONNECTION_CLOSED"
        /// The client could not connect.
        case notConnected = "NOT_CONNECTED"
        /// The call was cancelled (the server's task, or the client's caller).
        case cancelled = "CANCELLED"
        /// The client was closed before or while the call ran.
        case clientClosed = "CLIENT_CLOSED"
    }
}

/// An error that knows the status it leaves the server with.
///
/// Modelled on grpc-swift-2's `RPCErrorConvertible`: each layer's error type
/// conforms once, and the transport converts whatever a handler throws at the
/// one point where it builds the response (``RPCError/init(answering:)``).
/// The message and reason travel to the caller and must never carry a secret
/// or internal detail; ``rpcErrorCause`` stays in the process.
public protocol RPCErrorConvertible {
    /// The status code to end the call with.
    var rpcErrorCode: Code { get }
    /// A human-readable message for the caller.
    var rpcErrorMessage: String { get }
    /// The stable machine-readable reason.
    var rpcErrorReason: String { get }
    /// Extra machine-readable facts (default: none).
    var rpcErrorDetails: [String: String] { get }
    /// The underlying error, for logs (default: the value itself when it is an error).
    var rpcErrorCause: (any Error)? { get }
}

extension RPCErrorConvertible {
    /// By default an error carries no details.
    public var rpcErrorDetails: [String: String] { [:] }
    /// By default a value has no underlying error.
    public var rpcErrorCause: (any Error)? { nil }
}

extension RPCErrorConvertible where Self: Error {
    /// An error is its own cause.
    public var rpcErrorCause: (any Error)? { self }
}

extension RPCError: RPCErrorConvertible {
    /// The code.
    public var rpcErrorCode: Code { code }
    /// The message.
    public var rpcErrorMessage: String { message }
    /// The reason.
    public var rpcErrorReason: String { reason }
    /// The details.
    public var rpcErrorDetails: [String: String] { details }
    /// The cause, not the error itself.
    public var rpcErrorCause: (any Error)? { cause }
}

extension RPCError {
    /// Creates the error a convertible value describes.
    public init(_ convertible: some RPCErrorConvertible) {
        self.init(
            code: convertible.rpcErrorCode, message: convertible.rpcErrorMessage, reason: convertible.rpcErrorReason,
            details: convertible.rpcErrorDetails, cause: convertible.rpcErrorCause)
    }

    /// The error a failed call is answered with, whatever its handler threw:
    /// an ``RPCError`` as is, an ``RPCErrorConvertible`` converted, a
    /// cancellation as CANCELLED, and anything else as a generic INTERNAL
    /// (`INTERNAL_ERROR`, no detail) that keeps the error only as ``cause``.
    public init(answering error: any Error) {
        switch error {
        case let error as RPCError:
            self = error
        case let convertible as any RPCErrorConvertible:
            self.init(convertible)
        case is CancellationError:
            self.init(code: .cancelled, message: "the call was cancelled", reason: .cancelled)
        default:
            self.init(code: .internal, message: "internal error", reason: .internalError, cause: error)
        }
    }
}
