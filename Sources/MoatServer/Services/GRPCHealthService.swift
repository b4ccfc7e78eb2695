public import MoatProto
public import MoatRPC

/// `grpc.health.v1.Health`, the standard gRPC health check: SERVING while
/// moatd takes calls, NOT_SERVING once a graceful shutdown started (the
/// same ``ServingState`` as `moat.v1.Health`). Watch is not declared, so a
/// Watch call is UNIMPLEMENTED, as the protocol allows.
public struct GRPCHealthService: Grpc_Health_V1_HealthService {
    private let state: ServingState
    private let services: Set<String>

    /// Creates the service; `services` are the names Check knows besides "".
    public init(state: ServingState, services: Set<String>) {
        self.state = state
        self.services = services
    }

    public func check(
        request: Grpc_Health_V1_HealthCheckRequest, context: RequestContext
    ) async throws -> Grpc_Health_V1_HealthCheckResponse {
        try answer(request)
    }

    /// Check answered on the transport's thread (it never blocks).
    public var checkWithFastPath: ServerMethod {
        .unary(
            Grpc_Health_V1_Health.Method.check,
            fastPath: { (request: Grpc_Health_V1_HealthCheckRequest, _) in try self.answer(request) },
            handler: { request, _ in try self.answer(request) })
    }

    private func answer(_ request: Grpc_Health_V1_HealthCheckRequest) throws -> Grpc_Health_V1_HealthCheckResponse {
        guard request.service.isEmpty || services.contains(request.service) else {
            throw RPCError(code: .notFound, message: "unknown service", reason: RPCError.Reason.serviceNotFound)
        }
        var response = Grpc_Health_V1_HealthCheckResponse()
        response.status = state.isServing ? .serving : .notServing
        return response
    }
}
