import CMoatClient
import Foundation
import MoatClient
import MoatProto
import XCTest

#if canImport(Glibc)
import Glibc
#endif

private let ok = Int32(MOAT_OK)
private let password = "correct horse battery staple"
private let userAgent = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"

func signIn(_ client: CClient, tenant: String, email: String, password: String) throws -> String {
    let arena = CArena()
    let details = arena.message { moat__v1__client_details__init($0) }
    details.pointee.user_agent = arena.string(userAgent)
    details.pointee.ip = arena.string("203.0.113.9")
    details.pointee.location = arena.string("Berlin, DE")
    let request = arena.message { moat__v1__sign_in_request__init($0) }
    request.pointee.email = arena.string(email)
    request.pointee.password = arena.string(password)
    request.pointee.client = details
    return try client.call(
        "/moat.v1.Users/SignIn", tenant: tenant, request: base(request), response: "moat.v1.SignInResponse",
        as: Moat__V1__SignInResponse.self
    ) { string($0.session_token) }
}

func validateStatus(_ client: CClient, tenant: String, token: String) -> moat_status {
    let arena = CArena()
    let request = arena.message { moat__v1__validate_request__init($0) }
    request.pointee.token = arena.string(token)
    return client.status(
        "/moat.v1.Sessions/Validate", tenant: tenant, request: base(request), response: "moat.v1.ValidateResponse")
}

func healthStatus(_ client: CClient) -> moat_status {
    let arena = CArena()
    let request = arena.message { moat__v1__check_request__init($0) }
    return client.status("/moat.v1.Health/Check", request: base(request), response: "moat.v1.CheckResponse")
}

/// The C client (Sources/CMoatClient) against a live, in-process moatd.
final class CMoatClientTests: XCTestCase {
    private func assertStatus(
        _ status: moat_status, _ code: Int, _ reason: String, local: Bool, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(status.code, Int32(code), status.summary, file: file, line: line)
        XCTAssertEqual(status.reasonText, reason, status.summary, file: file, line: line)
        XCTAssertEqual(status.isLocal, local, status.summary, file: file, line: line)
        XCTAssertFalse(status.messageText.isEmpty, file: file, line: line)
    }

    // MARK: The happy path

    func testSignInValidateAndListSessions() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        let created = try moat.createTenant("acme", owner: "owner@acme.test", password: password)
        let client = try CClient(path: moat.socketPath)

        let health = healthStatus(client)
        XCTAssertEqual(health.code, ok, health.summary)

        let token = try signIn(client, tenant: "acme", email: "Owner@Acme.test", password: password)
        XCTAssertGreaterThan(token.count, 40)

        // Validate: the fields a service reads, as the Swift client sees them too.
        let arena = CArena()
        let validate = arena.message { moat__v1__validate_request__init($0) }
        validate.pointee.token = arena.string(token)
        let (userID, email, role, sessionID, tenantID) = try client.call(
            "/moat.v1.Sessions/Validate", tenant: "acme", request: base(validate),
            response: "moat.v1.ValidateResponse", as: Moat__V1__ValidateResponse.self
        ) { (string($0.user_id), string($0.email), $0.role, string($0.session_id), string($0.tenant_id)) }
        XCTAssertEqual(userID, created.owner.id)
        XCTAssertEqual(email, "owner@acme.test")
        XCTAssertEqual(role, MOAT__V1__TENANT_ROLE__TENANT_ROLE_OWNER)
        XCTAssertEqual(tenantID, created.tenant.id)
        let swift = moat.swift
        let seen: Moat_V1_ValidateResponse = try blocking {
            try await swift.sessions.validate(Moat_V1_ValidateRequest.with { $0.token = token }, options: CallOptions(tenant: "acme"))
        }
        XCTAssertEqual(seen.sessionID, sessionID)

        // A second sign-in, then List with the first token as authorization.
        _ = try signIn(client, tenant: created.tenant.id, email: "owner@acme.test", password: password)
        let list = arena.message { moat__v1__list_sessions_request__init($0) }
        let sessions: [(String, Bool, String, String)] = try client.call(
            "/moat.v1.Sessions/List", tenant: "acme", authorization: token, request: base(list),
            response: "moat.v1.ListSessionsResponse", as: Moat__V1__ListSessionsResponse.self
        ) { response in
            (0..<response.n_sessions).map { index -> (String, Bool, String, String) in
                let session = response.sessions[index]!.pointee
                return (string(session.id), session.current != 0, string(session.browser), string(session.location))
            }
        }
        XCTAssertEqual(sessions.count, 2)
        XCTAssertEqual(sessions.filter(\.1).map(\.0), [sessionID], "the calling session is marked current")
        XCTAssertEqual(Set(sessions.map(\.2)), ["Firefox 132"])
        XCTAssertEqual(Set(sessions.map(\.3)), ["Berlin, DE"])

        // Sign out; the token is dead the moment the call returns.
        let signOut = arena.message { moat__v1__sign_out_request__init($0) }
        try client.call(
            "/moat.v1.Users/SignOut", tenant: "acme", authorization: token, request: base(signOut),
            response: "moat.v1.SignOutResponse", as: Moat__V1__SignOutResponse.self
        ) { _ in }
        assertStatus(validateStatus(client, tenant: "acme", token: token), MOAT_UNAUTHENTICATED, "SESSION_INVALID", local: false)
    }

    func testDescriptorLookups() {
        XCTAssertNotNil(moat_message_descriptor("moat.v1.SignInRequest"))
        XCTAssertNotNil(moat_message_descriptor(".moat.rpc.v1.Response"))
        XCTAssertNil(moat_message_descriptor("moat.v1.Nope"))
        var request: UnsafePointer<ProtobufCMessageDescriptor>?
        var response: UnsafePointer<ProtobufCMessageDescriptor>?
        XCTAssertEqual(moat_method_types("/moat.v1.Users/SignIn", &request, &response), ok)
        XCTAssertEqual(String(cString: request!.pointee.name), "moat.v1.SignInRequest")
        XCTAssertEqual(String(cString: response!.pointee.name), "moat.v1.SignInResponse")
        XCTAssertEqual(moat_method_types("/moat.v1.Sessions/SignOut", &request, &response), ok)
        XCTAssertEqual(String(cString: request!.pointee.name), "moat.v1.SignOutRequest")
        XCTAssertEqual(moat_method_types("/moat.v1.Users/Nope", &request, &response), Int32(MOAT_UNIMPLEMENTED))
        XCTAssertNil(request)
        XCTAssertEqual(moat_method_types("nonsense", nil, nil), Int32(MOAT_UNIMPLEMENTED))
        XCTAssertEqual(String(cString: moat_code_name(16)), "UNAUTHENTICATED")
        XCTAssertEqual(String(cString: moat_code_name(99)), "UNKNOWN_CODE")
    }

    // MARK: Statuses from the daemon

    func testDaemonStatusesReachTheCaller() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        try moat.createTenant("acme", owner: "owner@acme.test", password: password)
        let client = try CClient(path: moat.socketPath)
        let arena = CArena()

        // UNIMPLEMENTED: an unknown method; the connection lives on.
        let check = arena.message { moat__v1__check_request__init($0) }
        let unknown = client.status("/moat.v1.Nope/Nothing", request: base(check), response: "moat.v1.CheckResponse")
        assertStatus(unknown, MOAT_UNIMPLEMENTED, "UNKNOWN_METHOD", local: false)

        // UNAUTHENTICATED: a user method without a session.
        let list = arena.message { moat__v1__list_sessions_request__init($0) }
        let noSession = client.status(
            "/moat.v1.Sessions/List", tenant: "acme", request: base(list), response: "moat.v1.ListSessionsResponse")
        assertStatus(noSession, MOAT_UNAUTHENTICATED, "SESSION_REQUIRED", local: false)

        // UNAUTHENTICATED: bad credentials (and an unknown email alike).
        for email in ["owner@acme.test", "nobody@acme.test"] {
            XCTAssertThrowsError(try signIn(client, tenant: "acme", email: email, password: "wrong password!")) {
                assertStatus(($0 as! CStatusError).status, MOAT_UNAUTHENTICATED, "INVALID_CREDENTIALS", local: false)
            }
        }
        // UNAUTHENTICATED: a token that is not a session.
        assertStatus(
            validateStatus(client, tenant: "acme", token: "bogus"), MOAT_UNAUTHENTICATED, "SESSION_INVALID",
            local: false)

        // NOT_FOUND: no such tenant.
        XCTAssertThrowsError(try signIn(client, tenant: "nowhere", email: "owner@acme.test", password: password)) {
            let status = ($0 as! CStatusError).status
            XCTAssertEqual(status.code, Int32(MOAT_NOT_FOUND), status.summary)
            XCTAssertFalse(status.isLocal)
        }

        // INVALID_ARGUMENT: a payload that is not the method's request.
        let garbage = client.raw("/moat.v1.Sessions/Validate", tenant: "acme", payload: [0xff, 0xff, 0xff])
        assertStatus(garbage.status, MOAT_INVALID_ARGUMENT, "INVALID_PAYLOAD", local: false)
        XCTAssertTrue(garbage.payload.isEmpty)

        // ALREADY_EXISTS: the slug is taken (the test process is an administrator).
        let create = arena.message { moat__v1__create_tenant_request__init($0) }
        create.pointee.slug = arena.string("acme")
        create.pointee.name = arena.string("Again")
        create.pointee.owner_email = arena.string("other@acme.test")
        create.pointee.owner_password = arena.string(password)
        let taken = client.status("/moat.v1.Tenants/Create", request: base(create), response: "moat.v1.CreateTenantResponse")
        XCTAssertEqual(taken.code, Int32(MOAT_ALREADY_EXISTS), taken.summary)

        // After all of these, the same connection still works.
        XCTAssertEqual(healthStatus(client).code, ok)
    }

    func testSignInLockoutCarriesRetryAfterDetail() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        try moat.createTenant("acme", owner: "owner@acme.test", password: password)
        let client = try CClient(path: moat.socketPath)
        var last: moat_status?
        for _ in 0..<6 {
            do {
                _ = try signIn(client, tenant: "acme", email: "owner@acme.test", password: "wrong password!")
            } catch let error as CStatusError {
                last = error.status
            }
        }
        var status = try XCTUnwrap(last)
        assertStatus(status, MOAT_RESOURCE_EXHAUSTED, "SIGN_IN_LOCKED", local: false)
        let retry = moat_status_detail_value(&status, "retry_after_seconds").map { String(cString: $0) }
        XCTAssertNotNil(retry.flatMap { Int($0) }, "details: \(status.n_details)")
        XCTAssertNil(moat_status_detail_value(&status, "nope"))
    }

    // MARK: Statuses from the client itself

    func testDaemonNotRunning() throws {
        var status = moat_status()
        XCTAssertNil(moat_client_connect("/tmp/moat-c-nowhere-\(getpid())/moat.sock", 1000, &status))
        assertStatus(status, MOAT_UNAVAILABLE, "NOT_CONNECTED", local: true)
        XCTAssertEqual(status.sys_errno, ENOENT)

        // A socket file that nothing listens on: a daemon that died.
        let moat = try LiveDaemon()
        let path = moat.socketPath
        try moat.stopDaemon()
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(fd)
        XCTAssertNil(moat_client_connect(path, 1000, &status))
        assertStatus(status, MOAT_UNAVAILABLE, "NOT_CONNECTED", local: true)
        XCTAssertEqual(status.sys_errno, ECONNREFUSED)
        moat.stop()

        XCTAssertNil(moat_client_connect(nil, 0, &status))
        assertStatus(status, MOAT_INVALID_ARGUMENT, "INVALID_ARGUMENT", local: true)
        XCTAssertNil(moat_client_connect(String(repeating: "x", count: 200), 0, &status))
        assertStatus(status, MOAT_INVALID_ARGUMENT, "INVALID_ARGUMENT", local: true)
        XCTAssertNil(moat_client_connect("/tmp/x", 0, nil), "a NULL status is allowed")
    }

    func testFrameLimitsAndUndecodableAnswers() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        try moat.createTenant("acme", owner: "owner@acme.test", password: password)
        let client = try CClient(path: moat.socketPath)
        let arena = CArena()

        // A request over the client's limit is refused before anything is sent.
        let big = [UInt8](repeating: 0, count: 2 << 20)
        let tooBig = client.raw("/moat.v1.Health/Check", payload: big)
        assertStatus(tooBig.status, MOAT_RESOURCE_EXHAUSTED, "FRAME_TOO_LARGE", local: true)
        XCTAssertEqual(healthStatus(client).code, ok, "the connection is untouched")

        // Over the daemon's limit (1 MiB) but not the client's: the daemon's
        // connection-level answer (id 0), then it closes; the next call
        // reconnects.
        client.setMaxFrameBytes(4 << 20)
        let daemonSays = client.raw("/moat.v1.Health/Check", payload: Array(big.prefix(3 << 19)))
        assertStatus(daemonSays.status, MOAT_RESOURCE_EXHAUSTED, "FRAME_TOO_LARGE", local: false)
        client.setMaxFrameBytes(0)
        XCTAssertEqual(healthStatus(client).code, ok, "a new connection after the daemon closed the old one")

        // An answer over the client's limit: the request (about 40 bytes)
        // fits in 60, the Tenant (about 100) does not.
        let get = arena.message { moat__v1__get_tenant_request__init($0) }
        get.pointee.tenant = arena.string("acme")
        client.setMaxFrameBytes(60)
        let answerTooBig = client.status("/moat.v1.Tenants/Get", request: base(get), response: "moat.v1.Tenant")
        assertStatus(answerTooBig, MOAT_RESOURCE_EXHAUSTED, "FRAME_TOO_LARGE", local: true)
        client.setMaxFrameBytes(0)
        let slug = try client.call(
            "/moat.v1.Tenants/Get", request: base(get), response: "moat.v1.Tenant", as: Moat__V1__Tenant.self
        ) { string($0.slug) }
        XCTAssertEqual(slug, "acme")

        // An answer that does not decode as the descriptor given: a
        // CheckResponse (field 1 a varint) read as a SignInResponse (field 1 a
        // string). The frame itself was fine, so the connection stays.
        let check = arena.message { moat__v1__check_request__init($0) }
        let wrongType = client.status("/moat.v1.Health/Check", request: base(check), response: "moat.v1.SignInResponse")
        assertStatus(wrongType, MOAT_INTERNAL, "PROTOCOL_ERROR", local: true)
        XCTAssertEqual(healthStatus(client).code, ok)

        // Bad arguments never reach the wire.
        var status = moat_status()
        var out: UnsafeMutablePointer<ProtobufCMessage>?
        XCTAssertEqual(
            moat_call(client.handle, nil, nil, nil, base(check), moat_message_descriptor("moat.v1.CheckResponse"), &out, &status),
            Int32(MOAT_INVALID_ARGUMENT))
        XCTAssertEqual(
            moat_call(client.handle, "/moat.v1.Health/Check", nil, nil, base(check), nil, &out, &status),
            Int32(MOAT_INVALID_ARGUMENT))
        XCTAssertEqual(
            moat_call(nil, "/moat.v1.Health/Check", nil, nil, base(check), moat_message_descriptor("moat.v1.CheckResponse"), &out, &status),
            Int32(MOAT_INVALID_ARGUMENT))
        XCTAssertEqual(status.reasonText, "INVALID_ARGUMENT")
        XCTAssertEqual(healthStatus(client).code, ok)
    }

    func testTimeoutConnectionLostAndProtocolErrorsFromAFakeDaemon() throws {
        // No answer: DEADLINE_EXCEEDED after the timeout plus the grace.
        var fake = try FakeServer(.silent)
        var client = try CClient(path: fake.path, timeoutMs: 200)
        let started = Date()
        assertStatus(healthStatus(client), MOAT_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", local: true)
        let waited = Date().timeIntervalSince(started)
        XCTAssertGreaterThanOrEqual(waited, 0.2 + Double(MOAT_CLIENT_GRACE_MS) / 1000 - 0.02)
        XCTAssertLessThan(waited, 3)
        fake.stop()  // the client closed the connection when it gave up

        // The connection closes mid-call.
        fake = try FakeServer(.close)
        client = try CClient(path: fake.path)
        assertStatus(healthStatus(client), MOAT_UNAVAILABLE, "CONNECTION_CLOSED", local: true)
        fake.stop()

        // Half a frame, then the connection closes.
        fake = try FakeServer(.sendAndClose([0, 0, 0, 100, 8, 1]))
        client = try CClient(path: fake.path)
        assertStatus(healthStatus(client), MOAT_UNAVAILABLE, "CONNECTION_CLOSED", local: true)
        fake.stop()

        // A frame that is not a Response.
        fake = try FakeServer(.send(frame([0xff, 0xff, 0xff, 0xff])))
        client = try CClient(path: fake.path)
        assertStatus(healthStatus(client), MOAT_INTERNAL, "PROTOCOL_ERROR", local: true)
        fake.stop()

        // An answer to another request id.
        var response = Moat_Rpc_V1_Response()
        response.id = 42
        fake = try FakeServer(.send(frame(try response.serializedBytes())))
        client = try CClient(path: fake.path)
        assertStatus(healthStatus(client), MOAT_INTERNAL, "PROTOCOL_ERROR", local: true)
        fake.stop()

        // A frame announced far over the limit.
        fake = try FakeServer(.send([0x7f, 0xff, 0xff, 0xff]))
        client = try CClient(path: fake.path)
        assertStatus(healthStatus(client), MOAT_RESOURCE_EXHAUSTED, "FRAME_TOO_LARGE", local: true)
        fake.stop()
    }

    // MARK: Restart and threads

    func testDaemonRestartClearErrorThenNewConnectionWorks() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        try moat.createTenant("acme", owner: "owner@acme.test", password: password)
        let client = try CClient(path: moat.socketPath)
        let token = try signIn(client, tenant: "acme", email: "owner@acme.test", password: password)
        XCTAssertEqual(validateStatus(client, tenant: "acme", token: token).code, ok)

        try moat.stopDaemon()
        // A clear error while it is down: the old connection is gone and
        // nothing listens any more.
        let down = validateStatus(client, tenant: "acme", token: token)
        assertStatus(down, MOAT_UNAVAILABLE, "NOT_CONNECTED", local: true)
        XCTAssertEqual(down.sys_errno, ENOENT, "moatd removes its socket on shutdown")
        XCTAssertThrowsError(try CClient(path: moat.socketPath)) {
            assertStatus(($0 as! CStatusError).status, MOAT_UNAVAILABLE, "NOT_CONNECTED", local: true)
        }

        try moat.start()
        // A new connection works, and so does the old client (it reconnects);
        // the session survived the restart.
        let fresh = try CClient(path: moat.socketPath)
        XCTAssertEqual(validateStatus(fresh, tenant: "acme", token: token).code, ok)
        XCTAssertEqual(validateStatus(client, tenant: "acme", token: token).code, ok)
        XCTAssertEqual(healthStatus(client).code, ok)
    }

    func testIdleConnectionClosedByTheDaemonIsReplacedBeforeTheNextCall() throws {
        let moat = try LiveDaemon(limits: { $0.idleTimeout = .seconds(1) })
        defer { moat.stop() }
        let client = try CClient(path: moat.socketPath)
        XCTAssertEqual(healthStatus(client).code, ok)
        // real time: the daemon's real 1 s idle timeout closes the C client's socket.
        Thread.sleep(forTimeInterval: 1.6)
        let after = healthStatus(client)
        XCTAssertEqual(after.code, ok, after.summary)
    }

    func testOneClientPerThread() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        try moat.createTenant("acme", owner: "owner@acme.test", password: password)
        let setup = try CClient(path: moat.socketPath)
        let token = try signIn(setup, tenant: "acme", email: "owner@acme.test", password: password)
        let path = moat.socketPath
        let failures = Failures()
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let client = try? CClient(path: path) else { return failures.add("connect") }
                for _ in 0..<100 {
                    let status = validateStatus(client, tenant: "acme", token: token)
                    if status.code != ok { failures.add(status.summary) }
                }
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(failures.all, [])
    }
}

private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ failure: String) { lock.withLock { list.append(failure) } }
    var all: [String] { lock.withLock { list } }
}
