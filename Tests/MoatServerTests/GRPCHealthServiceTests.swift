import MoatProto
import MoatRPC
import XCTest

@testable import MoatServer

final class GRPCHealthServiceTests: XCTestCase {
    private let context = RequestContext(
        requestID: 1, method: Grpc_Health_V1_Health.Method.check,
        caller: Caller(credentials: PeerCredentials(uid: 0, gid: 0, pid: 1), isAdmin: false),
        deadline: .now + .seconds(1))

    func testFollowsTheServingStateForTheDaemonAndItsServices() async throws {
        let state = ServingState()
        let service = GRPCHealthService(state: state, services: ["moat.v1.Sessions"])
        var request = Grpc_Health_V1_HealthCheckRequest()
        let daemon = try await service.check(request: request, context: context)
        XCTAssertEqual(daemon.status, .serving)
        request.service = "moat.v1.Sessions"
        let sessions = try await service.check(request: request, context: context)
        XCTAssertEqual(sessions.status, .serving)
        state.stopServing()
        let draining = try await service.check(request: request, context: context)
        XCTAssertEqual(draining.status, .notServing)
        request.service = ""
        let fast = try XCTUnwrap(service.checkWithFastPath.fastPath)
        let answer = try XCTUnwrap(try fast(try request.serializedBytes(), context))
        XCTAssertEqual(try Grpc_Health_V1_HealthCheckResponse(serializedBytes: answer).status, .notServing)
    }

    func testAnUnknownServiceIsNotFound() async throws {
        let service = GRPCHealthService(state: ServingState(), services: ["moat.v1.Sessions"])
        var request = Grpc_Health_V1_HealthCheckRequest()
        request.service = "moat.v1.Nope"
        do {
            _ = try await service.check(request: request, context: context)
            XCTFail("answered for an unknown service")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .notFound)
            XCTAssertEqual(error.reason, "SERVICE_NOT_FOUND")
        }
    }
}
