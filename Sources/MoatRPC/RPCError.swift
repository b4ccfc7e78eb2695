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
    /// Stable reasons used by the RPC runtime itself.
    public enum Reason {
        public static let unknownMethod = "UNKNOWN_METHOD"
        public static let invalidPayload = "INVALID_PAYLOAD"
        public static let adminRequired = "ADMIN_REQUIRED"
        public static let sessionRequired = "SESSION_REQUIRED"
        public static let deadlineExceeded = "DEADLINE_EXCEEDED"
        public static let shuttingDown = "SHUTTING_DOWN"
        public static let internalError = "INTERNAL_ERROR"
        public static let frameTooLarge = "FRAME_TOO_LARGE"
        public static let malformedFrame = "MALFORMED_FRAME"
        public static let frameTimeout = "FRAME_TIMEOUT"
        public static let truncatedFrame = "TRUNCATED_FRAME"
        public static let responseTooLarge = "RESPONSE_TOO_LARGE"
        public static let callerNotAllowed = "CALLER_NOT_ALLOWED"
        public static let tooManyConnections = "TOO_MANY_CONNECTIONS"
        public static let invalidRequestID = "INVALID_REQUEST_ID"
        public static let duplicateRequestID = "DUPLICATE_REQUEST_ID"
        public static let connectionClosed = "CONNECTION_CLOSED"
        public static let notConnected = "NOT_CONNECTED"
    }
}
