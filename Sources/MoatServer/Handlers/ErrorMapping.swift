public import MoatCore
public import MoatCrypto
public import MoatRPC
public import MoatStore

// The one place each layer's errors get their wire status. The transport
// converts whatever a handler throws with `RPCError(answering:)`, so handlers
// just throw. The conformances live here, not beside the types: MoatCore,
// MoatStore and MoatCrypto know nothing of the wire (MoatRPC brings
// SwiftProtobuf), and MoatServer is the one module that sees all of them.

extension DomainError: RPCErrorConvertible {
    /// The status code of the error's kind.
    public var rpcErrorCode: Code {
        switch kind {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .permissionDenied: .permissionDenied
        case .unauthenticated: .unauthenticated
        case .failedPrecondition: .failedPrecondition
        case .resourceExhausted: .resourceExhausted
        case .unavailable: .unavailable
        case .internal: .internal
        }
    }

    /// The domain's message, written for the caller.
    public var rpcErrorMessage: String { message }
    /// The domain's stable reason.
    public var rpcErrorReason: String { reason }
    /// The domain's details, e.g. `retry_after_seconds`.
    public var rpcErrorDetails: [String: String] { details }
}

/// The stable reasons a store failure reaches the caller with. Only
/// conditions a caller can wait out get one; every other store failure is a
/// generic INTERNAL `INTERNAL_ERROR`.
enum StoreFailureReason: String, Sendable, CaseIterable {
    /// The database stayed locked past the busy timeout.
    case busy = "STORE_BUSY"
    /// The disk, or the database's size limit, is full.
    case full = "STORE_FULL"
    /// The database is closed (moatd is shutting down).
    case closed = "STORE_CLOSED"
    /// The store ran out of memory.
    case noMemory = "STORE_NO_MEMORY"
    /// The statement was interrupted.
    case interrupted = "STORE_INTERRUPTED"
    /// Another write's failure rolled back the batch this write was in.
    case transactionAborted = "STORE_TRANSACTION_ABORTED"
    /// PostgreSQL could not be reached (or the connection was lost) past
    /// the store's retries.
    case unavailable = "STORE_UNAVAILABLE"
    /// PostgreSQL kept failing to serialize the write past the retries.
    case serializationFailure = "SERIALIZATION_FAILURE"
    /// A text value PostgreSQL cannot store (a NUL character): bad input.
    case invalidText = "INVALID_TEXT"
}

extension StoreError: RPCErrorConvertible {
    /// The wire status of a store failure: transient conditions as
    /// UNAVAILABLE or RESOURCE_EXHAUSTED, anything else as a generic INTERNAL.
    /// The store's own message (SQL, SQLite's text) never leaves the process.
    var wireStatus: (code: Code, reason: String, message: String) {
        switch reason {
        case .busy:
            (.unavailable, StoreFailureReason.busy.rawValue, "the database is busy; try again")
        case .closed:
            (.unavailable, StoreFailureReason.closed.rawValue, "the database is closed; moatd is shutting down")
        case .interrupted:
            (.unavailable, StoreFailureReason.interrupted.rawValue, "the database operation was interrupted; try again")
        case .transactionAborted:
            (.unavailable, StoreFailureReason.transactionAborted.rawValue, "the write was rolled back; try again")
        case .unavailable:
            (.unavailable, StoreFailureReason.unavailable.rawValue, "the database is unavailable; try again")
        case .serializationFailure:
            (.unavailable, StoreFailureReason.serializationFailure.rawValue, "the write kept conflicting; try again")
        case .invalidText:
            (.invalidArgument, StoreFailureReason.invalidText.rawValue, "a text value contains a NUL character")
        case .full:
            (.resourceExhausted, StoreFailureReason.full.rawValue, "the database is full")
        case .noMemory:
            (.resourceExhausted, StoreFailureReason.noMemory.rawValue, "the database is out of memory")
        default:
            (.internal, RPCError.Reason.internalError.rawValue, "internal error")
        }
    }

    /// See ``wireStatus``.
    public var rpcErrorCode: Code { wireStatus.code }
    /// A generic message; the store's message is logged, never sent.
    public var rpcErrorMessage: String { wireStatus.message }
    /// `STORE_BUSY`, `STORE_FULL`, ... or `INTERNAL_ERROR`.
    public var rpcErrorReason: String { wireStatus.reason }
}

extension CryptoError: RPCErrorConvertible {
    /// Crypto failures that reach a handler are moatd's own failures (bad
    /// input is refused before any primitive runs): INTERNAL, no detail.
    public var rpcErrorCode: Code { .internal }
    /// A generic message; the detail is for logs only.
    public var rpcErrorMessage: String { "internal error" }
    /// `INTERNAL_ERROR`.
    public var rpcErrorReason: String { RPCError.Reason.internalError.rawValue }
}
