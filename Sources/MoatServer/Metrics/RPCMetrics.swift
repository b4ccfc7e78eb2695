import Foundation
import Metrics
import MoatCore
import MoatProto
import MoatRPC

/// Records every dispatched call through swift-metrics: calls by method and
/// code, latency by method, calls in flight, and the outcomes of sign-ins
/// and second-factor checks. Labels carry only method paths, codes and
/// fixed outcome words: never a tenant, user, email, token or address.
enum RPCMetrics {
    static let requests = "moat_rpc_requests_total"
    static let duration = "moat_rpc_request_duration_seconds"
    static let inFlight = "moat_rpc_calls_in_flight"
    static let signIns = "moat_sign_ins_total"
    static let twoFactor = "moat_two_factor_verifications_total"

    /// The router with every method wrapped to record its calls.
    /// Each wrapper is a declared replacement of the method it wraps.
    static func instrument(_ router: Router) throws(Router.RegistrationError) -> Router {
        var instrumented = router
        for path in router.paths {
            guard let method = router.method(for: path) else { continue }
            try instrumented.replace(instrument(method))
        }
        return instrumented
    }

    /// Methods whose answer is a second-factor check.
    static let twoFactorMethods: Set<String> = [
        "/moat.v1.Users/CompleteSignIn", "/moat.v1.TwoFactor/Verify", "/moat.v1.TwoFactor/ConfirmEnrollment",
        "/moat.v1.TwoFactor/Disable", "/moat.v1.TwoFactor/RegenerateRecoveryCodes",
    ]

    static func instrument(_ method: ServerMethod) -> ServerMethod {
        let path = method.descriptor.path
        let instruments = Instruments(path: path)
        let handler = method.handler
        let fastPath = method.fastPath.map { fastPath in
            { @Sendable (payload: Data, context: RequestContext) throws -> Data? in
                let started = RPCCallCounters.now()
                do {
                    guard let response = try fastPath(payload, context) else { return nil }
                    instruments.finished(started: started, payload: response, error: nil)
                    return response
                } catch {
                    instruments.finished(started: started, payload: nil, error: error)
                    throw error
                }
            }
        }
        let completionPath = method.completionPath.map { completionPath in
            { @Sendable (payload: Data, context: RequestContext, completion: @escaping @Sendable (Result<Data, any Error>) -> Void) in
                let started = RPCCallCounters.now()
                instruments.inFlight.increment()
                completionPath(payload, context) { result in
                    instruments.inFlight.decrement()
                    switch result {
                    case .success(let response): instruments.finished(started: started, payload: response, error: nil)
                    case .failure(let error): instruments.finished(started: started, payload: nil, error: error)
                    }
                    completion(result)
                }
            }
        }
        return ServerMethod(descriptor: method.descriptor, fastPath: fastPath, completionPath: completionPath) {
            payload, context in
            let started = RPCCallCounters.now()
            instruments.inFlight.increment()
            defer { instruments.inFlight.decrement() }
            do {
                let response = try await handler(payload, context)
                instruments.finished(started: started, payload: response, error: nil)
                return response
            } catch {
                instruments.finished(started: started, payload: nil, error: error)
                throw error
            }
        }
    }

    /// The metric handles of one method, made once.
    struct Instruments: Sendable {
        /// What a method's answers count towards beyond calls and latency.
        enum Outcomes { case none, signIn, twoFactor }

        let calls: RPCCallCounters.Method
        let outcomes: Outcomes
        let inFlight: Meter

        init(path: String) {
            calls = RPCCallCounters.shared.method(path)
            outcomes =
                path == "/moat.v1.Users/SignIn" ? .signIn : RPCMetrics.twoFactorMethods.contains(path) ? .twoFactor : .none
            inFlight = Meter(label: RPCMetrics.inFlight)
        }

        /// Counts one answered call that started at `started`
        /// (``RPCCallCounters/now()``).
        func finished(started: Int64, payload: Data?, error: (any Error)?) {
            let elapsed = RPCCallCounters.now() - started
            guard let error else {
                calls.record(code: 0, nanoseconds: elapsed)
                if outcomes != .none { countOutcome(payload: payload, reason: nil, succeeded: true) }
                return
            }
            // The code and reason the caller sees: the transport's one
            // conversion (domain, store and crypto errors, cancellation).
            let answered = RPCError(answering: error)
            calls.record(code: answered.code.rawValue, nanoseconds: elapsed)
            if outcomes != .none { countOutcome(payload: nil, reason: answered.reason, succeeded: false) }
        }

        private func countOutcome(payload: Data?, reason: String?, succeeded: Bool) {
            switch outcomes {
            case .none: return
            case .signIn:
                Counter(label: RPCMetrics.signIns, dimensions: [("outcome", signInOutcome(payload, reason: reason))])
                    .increment()
            case .twoFactor:
                Counter(label: RPCMetrics.twoFactor, dimensions: [("outcome", twoFactorOutcome(succeeded, reason))])
                    .increment()
            }
        }

        private func signInOutcome(_ payload: Data?, reason: String?) -> String {
            if let payload {
                let response = try? Moat_V1_SignInResponse(serializedBytes: payload)
                return response?.secondFactorRequired == true ? "second_factor_required" : "ok"
            }
            switch reason {
            case DomainError.Reason.invalidCredentials.rawValue: return "wrong_password"
            case DomainError.Reason.signInLocked.rawValue: return "locked"
            default: return "refused"
            }
        }

        private func twoFactorOutcome(_ succeeded: Bool, _ reason: String?) -> String {
            if succeeded { return "ok" }
            switch reason {
            case DomainError.Reason.totpCodeInvalid.rawValue, DomainError.Reason.recoveryCodeInvalid.rawValue:
                return "invalid"
            case DomainError.Reason.totpCodeReused.rawValue: return "reused"
            case DomainError.Reason.twoFactorLocked.rawValue: return "locked"
            default: return "refused"
            }
        }
    }
}

extension Metrics.Timer {
    /// Records the time since `start`.
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
