import MoatCore
import MoatRPC

extension RPCError {
    /// The one place domain errors become wire statuses.
    init(_ error: DomainError) {
        let code: Code =
            switch error.kind {
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
        self.init(code: code, message: error.message, reason: error.reason, details: error.details)
    }
}

/// Runs a handler body, turning domain errors into RPC errors. Other errors
/// pass through (the transport answers them as INTERNAL without detail).
func translatingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as DomainError {
        throw RPCError(error)
    }
}
