import Foundation
import MoatProto
import XCTest

@testable import MoatRPC

final class RouterTests: XCTestCase {
    private let publicMethod = MethodDescriptor(service: "moat.test.T", method: "Open", access: .public)
    private let userMethod = MethodDescriptor(service: "moat.test.T", method: "Mine", access: .user)
    private let adminMethod = MethodDescriptor(service: "moat.test.T", method: "Root", access: .admin)

    private var router: Router {
        get throws {
            var router = try Router()
            for descriptor in [publicMethod, userMethod, adminMethod] {
                try router.register(ServerMethod(descriptor: descriptor) { payload, _ in payload })
            }
            return router
        }
    }

    private let member = Caller(credentials: PeerCredentials(uid: 1000, gid: 1000, pid: 1), isAdmin: false)
    private let admin = Caller(credentials: PeerCredentials(uid: 0, gid: 0, pid: 1), isAdmin: true)

    private func code(of body: () throws -> Void) -> (Code, String)? {
        do {
            try body()
            return nil
        } catch let error as RPCError {
            return (error.code, error.reason)
        } catch {
            return (.unknown, "")
        }
    }

    func testPathsFollowTheGRPCForm() {
        XCTAssertEqual(publicMethod.path, "/moat.test.T/Open")
        XCTAssertEqual(try router.paths, ["/moat.test.T/Mine", "/moat.test.T/Open", "/moat.test.T/Root"])
    }

    func testUnknownMethodIsUnimplemented() {
        let result = code { _ = try router.resolve(path: "/moat.test.T/Nope", caller: admin, authorization: "") }
        XCTAssertEqual(result?.0, .unimplemented)
        XCTAssertEqual(result?.1, "UNKNOWN_METHOD")
    }

    func testAccessMatrix() {
        // public: anyone
        XCTAssertNil(code { _ = try router.resolve(path: publicMethod.path, caller: member, authorization: "") })
        // admin: administrators only
        XCTAssertEqual(code { _ = try router.resolve(path: adminMethod.path, caller: member, authorization: "x") }?.0, .permissionDenied)
        XCTAssertNil(code { _ = try router.resolve(path: adminMethod.path, caller: admin, authorization: "") })
        // user: a session token is required, even from administrators
        XCTAssertEqual(code { _ = try router.resolve(path: userMethod.path, caller: admin, authorization: "") }?.1, "SESSION_REQUIRED")
        XCTAssertNil(code { _ = try router.resolve(path: userMethod.path, caller: member, authorization: "token") })
    }

    func testUnknownPathInErrorIsBoundedAndPrintable() {
        let hostile = "/\u{1B}[31m" + String(repeating: "A", count: 10_000)
        do {
            _ = try router.resolve(path: hostile, caller: admin, authorization: "")
            XCTFail("resolved")
        } catch let error as RPCError {
            XCTAssertLessThan(error.message.count, 200)
            XCTAssertFalse(error.message.contains("\u{1B}"))
        } catch {
            XCTFail("\(error)")
        }
    }

    func testUnaryDecodesAndRejectsBadPayload() async throws {
        let method = ServerMethod.unary(publicMethod) { (request: Moat_V1_CheckRequest, _) in
            var response = Moat_V1_CheckResponse()
            response.version = "ok"
            return response
        }
        let context = RequestContext(requestID: 1, method: publicMethod, caller: member, deadline: .now + .seconds(1))
        let output = try await method.handler(Data(), context)
        XCTAssertEqual(try Moat_V1_CheckResponse(serializedBytes: output).version, "ok")
        do {
            _ = try await method.handler(Data([0xFF, 0xFF, 0xFF]), context)
            XCTFail("decoded garbage")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .invalidArgument)
            XCTAssertEqual(error.reason, "INVALID_PAYLOAD")
        }
    }

    func testCodesMatchTheWireEnum() {
        for number in 0...16 {
            let code = Code(rawValue: number)
            let wire = Moat_Rpc_V1_Code(rawValue: number)
            XCTAssertNotNil(wire)
            XCTAssertEqual(code.rawValue, number)
        }
        XCTAssertEqual(Code.unauthenticated.rawValue, 16)
        XCTAssertEqual(Code.permissionDenied.description, "PERMISSION_DENIED")
        XCTAssertEqual(Code(rawValue: 99), .unknown)
    }

    func testErrorDescriptionCarriesCodeAndReason() {
        let error = RPCError(code: .invalidArgument, message: "too short", reason: "PASSWORD_TOO_SHORT")
        XCTAssertEqual(error.description, "INVALID_ARGUMENT (PASSWORD_TOO_SHORT): too short")
    }

    func testSecondRegistrationOfAPathIsRefused() throws {
        var router = try self.router
        let again = ServerMethod(descriptor: publicMethod) { _, _ in Data("second".utf8) }
        XCTAssertThrowsError(try router.register(again)) { error in
            XCTAssertEqual(error as? Router.RegistrationError, .duplicate(path: publicMethod.path))
        }
        struct Twice: RPCService { let methods: [ServerMethod] }
        let method = ServerMethod(descriptor: publicMethod) { payload, _ in payload }
        XCTAssertThrowsError(try Router(services: [Twice(methods: [method, method])])) { error in
            XCTAssertEqual(error as? Router.RegistrationError, .duplicate(path: publicMethod.path))
        }
    }

    func testReplacementMustBeDeclaredAndReplaceAnExistingPath() async throws {
        var router = try self.router
        try router.replace(ServerMethod(descriptor: publicMethod) { _, _ in Data("replaced".utf8) })
        let context = RequestContext(requestID: 1, method: publicMethod, caller: member, deadline: .now + .seconds(1))
        let answer = try await router.resolve(path: publicMethod.path, caller: member, authorization: "")
            .handler(Data("x".utf8), context)
        XCTAssertEqual(String(decoding: answer, as: UTF8.self), "replaced")
        let absent = MethodDescriptor(service: "moat.test.T", method: "Absent", access: .public)
        XCTAssertThrowsError(try router.replace(ServerMethod(descriptor: absent) { payload, _ in payload })) { error in
            XCTAssertEqual(error as? Router.RegistrationError, .nothingToReplace(path: absent.path))
        }
        XCTAssertNil(router.method(for: absent.path))
    }
}
