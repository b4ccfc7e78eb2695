import CMoatClient
import Foundation
import MoatClient
import MoatProto
import SwiftProtobuf
import XCTest

/// Byte-level interop, one request per service: the same request built with
/// protobuf-c (sent by the C client) and with SwiftProtobuf (sent by the
/// Swift client) reaches the daemon as the same bytes and decodes, through
/// the daemon's own decoding path, to the same message. The capture methods
/// echo the decoded message back, so the C client also decodes what
/// SwiftProtobuf encodes. Each test then calls the real method with the
/// protobuf-c message.
final class InteropTests: XCTestCase {
    private let password = "correct horse battery staple ✓"

    /// Sends `cMessage` with the C client and `swiftMessage` with the Swift
    /// client to the capture method `name`, and checks the daemon received
    /// and decoded them identically.
    private func assertDecodedIdentically<T, M: SwiftProtobuf.Message & Equatable>(
        _ name: String, c cMessage: UnsafeMutablePointer<T>, swift swiftMessage: M, daemon moat: LiveDaemon,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let client = try CClient(path: moat.socketPath)
        let path = CaptureService.descriptor(name).path
        let cBytes = protobufCBytes(cMessage)
        let swiftBytes: [UInt8] = try swiftMessage.serializedBytes()

        // protobuf-c -> C client -> daemon; the echo is decoded by protobuf-c.
        let echoName = String(cString: cMessage.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) {
            $0.pointee.descriptor.pointee.name
        })
        let echoed = try client.call(path, request: base(cMessage), response: echoName, as: T.self) { echo in
            var copy = echo
            return withUnsafeMutablePointer(to: &copy) { protobufCBytes($0) }
        }
        // SwiftProtobuf -> Swift client -> daemon.
        let swift = moat.swift
        let descriptor = CaptureService.descriptor(name)
        let payload = Data(swiftBytes)
        _ = try blocking { try await swift.call(descriptor, payload: payload, options: CallOptions()) }

        let records = moat.capture.take()
        XCTAssertEqual(records.map(\.path), [path, path], file: file, line: line)
        guard records.count == 2 else { return }
        let fromC = try XCTUnwrap(records[0].decoded as? M, file: file, line: line)
        let fromSwift = try XCTUnwrap(records[1].decoded as? M, file: file, line: line)

        // The same bytes on the wire...
        XCTAssertEqual(records[0].payload, cBytes, "the daemon received protobuf-c's bytes", file: file, line: line)
        XCTAssertEqual(records[1].payload, swiftBytes, file: file, line: line)
        XCTAssertEqual(cBytes, swiftBytes, "protobuf-c and SwiftProtobuf encode identically", file: file, line: line)
        // ...the same decoded message, equal to the one Swift built...
        XCTAssertEqual(fromC, fromSwift, file: file, line: line)
        XCTAssertEqual(fromC, swiftMessage, file: file, line: line)
        XCTAssertEqual(try fromC.serializedBytes() as [UInt8], try fromSwift.serializedBytes() as [UInt8], file: file, line: line)
        // ...and SwiftProtobuf's re-encoding decodes in protobuf-c to the original.
        XCTAssertEqual(echoed, cBytes, "protobuf-c decodes SwiftProtobuf's encoding", file: file, line: line)
    }

    func testHealthCheck() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        let arena = CArena()
        let request = arena.message { moat__v1__check_request__init($0) }
        try assertDecodedIdentically("HealthCheck", c: request, swift: Moat_V1_CheckRequest(), daemon: moat)

        let client = try CClient(path: moat.socketPath)
        let (status, version, started) = try client.call(
            "/moat.v1.Health/Check", request: base(request), response: "moat.v1.CheckResponse",
            as: Moat__V1__CheckResponse.self
        ) { ($0.status, string($0.version), $0.started_at_unix) }
        let swift = moat.swift
        let seen: Moat_V1_CheckResponse = try blocking { try await swift.health.check() }
        XCTAssertEqual(status, MOAT__V1__CHECK_RESPONSE__SERVING_STATUS__SERVING)
        XCTAssertEqual(version, seen.version)
        XCTAssertEqual(started, seen.startedAtUnix)
    }

    func testTenantsCreateAndUpdatePolicy() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        let arena = CArena()
        let create = arena.message { moat__v1__create_tenant_request__init($0) }
        create.pointee.slug = arena.string("backerei-interop")
        create.pointee.name = arena.string("Bäckerei Müller — Ünïcödé ✓ 🥐")
        create.pointee.owner_email = arena.string("owner@bakery.test")
        create.pointee.owner_password = arena.string(password)
        let swiftCreate = Moat_V1_CreateTenantRequest.with {
            $0.slug = "backerei-interop"
            $0.name = "Bäckerei Müller — Ünïcödé ✓ 🥐"
            $0.ownerEmail = "owner@bakery.test"
            $0.ownerPassword = password
        }
        try assertDecodedIdentically("TenantsCreate", c: create, swift: swiftCreate, daemon: moat)

        // The real method, from C.
        let client = try CClient(path: moat.socketPath)
        let (tenantID, ownerEmail) = try client.call(
            "/moat.v1.Tenants/Create", request: base(create), response: "moat.v1.CreateTenantResponse",
            as: Moat__V1__CreateTenantResponse.self
        ) { (string($0.tenant.pointee.id), string($0.owner.pointee.email)) }
        let swift = moat.swift
        let tenant: Moat_V1_Tenant = try blocking { try await swift.tenants.get(Moat_V1_GetTenantRequest.with { $0.tenant = "backerei-interop" }) }
        XCTAssertEqual(tenant.id, tenantID)
        XCTAssertEqual(tenant.name, "Bäckerei Müller — Ünïcödé ✓ 🥐")
        XCTAssertEqual(ownerEmail, "owner@bakery.test")

        // proto3 `optional` fields (protoc-c sees them as one-field oneofs):
        // presence survives, including explicit zero/false values.
        let update = arena.message { moat__v1__update_policy_request__init($0) }
        update.pointee.tenant = arena.string("backerei-interop")
        update.pointee._min_password_length_case = MOAT__V1__UPDATE_POLICY_REQUEST___MIN_PASSWORD_LENGTH_MIN_PASSWORD_LENGTH
        update.pointee.min_password_length = 12
        update.pointee._require_two_factor_case = MOAT__V1__UPDATE_POLICY_REQUEST___REQUIRE_TWO_FACTOR_REQUIRE_TWO_FACTOR
        update.pointee.require_two_factor = 0
        update.pointee._max_sessions_per_user_case =
            MOAT__V1__UPDATE_POLICY_REQUEST___MAX_SESSIONS_PER_USER_MAX_SESSIONS_PER_USER
        update.pointee.max_sessions_per_user = 0
        update.pointee._session_idle_timeout_seconds_case =
            MOAT__V1__UPDATE_POLICY_REQUEST___SESSION_IDLE_TIMEOUT_SECONDS_SESSION_IDLE_TIMEOUT_SECONDS
        update.pointee.session_idle_timeout_seconds = 7200
        let swiftUpdate = Moat_V1_UpdatePolicyRequest.with {
            $0.tenant = "backerei-interop"
            $0.minPasswordLength = 12
            $0.requireTwoFactor = false
            $0.maxSessionsPerUser = 0
            $0.sessionIdleTimeoutSeconds = 7200
        }
        try assertDecodedIdentically("TenantsUpdatePolicy", c: update, swift: swiftUpdate, daemon: moat)
        XCTAssertTrue(swiftUpdate.hasRequireTwoFactor && swiftUpdate.hasMaxSessionsPerUser)
        XCTAssertFalse(swiftUpdate.hasLockoutThreshold)

        let (minLength, idle, lockout) = try client.call(
            "/moat.v1.Tenants/UpdatePolicy", request: base(update), response: "moat.v1.TenantPolicy",
            as: Moat__V1__TenantPolicy.self
        ) { ($0.min_password_length, $0.session_idle_timeout_seconds, $0.lockout_threshold) }
        XCTAssertEqual(minLength, 12)
        XCTAssertEqual(idle, 7200)
        XCTAssertEqual(lockout, tenant.policy.lockoutThreshold, "fields left unset keep their value")
    }

    func testUsersSignIn() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        try moat.createTenant("acme", owner: "owner@acme.test", password: password)
        let arena = CArena()
        let details = arena.message { moat__v1__client_details__init($0) }
        details.pointee.user_agent = arena.string("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15")
        details.pointee.ip = arena.string("2001:db8::1")
        details.pointee.location = arena.string("Zürich, CH")
        details.pointee.device_name = arena.string("Anna’s MacBook")
        let request = arena.message { moat__v1__sign_in_request__init($0) }
        request.pointee.email = arena.string("Owner@Acme.test")
        request.pointee.password = arena.string(password)
        request.pointee.client = details
        let swiftRequest = Moat_V1_SignInRequest.with {
            $0.email = "Owner@Acme.test"
            $0.password = password
            $0.client.userAgent =
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
            $0.client.ip = "2001:db8::1"
            $0.client.location = "Zürich, CH"
            $0.client.deviceName = "Anna’s MacBook"
        }
        try assertDecodedIdentically("UsersSignIn", c: request, swift: swiftRequest, daemon: moat)

        // The real method, from C: the session carries the client details.
        let client = try CClient(path: moat.socketPath)
        let (token, location, device) = try client.call(
            "/moat.v1.Users/SignIn", tenant: "acme", request: base(request), response: "moat.v1.SignInResponse",
            as: Moat__V1__SignInResponse.self
        ) { (string($0.session_token), string($0.session.pointee.location), string($0.session.pointee.device_name)) }
        XCTAssertEqual(location, "Zürich, CH")
        XCTAssertEqual(device, "Anna’s MacBook")
        let swift = moat.swift
        let sessions: Moat_V1_ListSessionsResponse = try blocking {
            try await swift.sessions.list(options: CallOptions(tenant: "acme", authorization: token))
        }
        XCTAssertEqual(sessions.sessions.map(\.ip), ["2001:db8::1"])
        XCTAssertEqual(sessions.sessions.map(\.browser), ["Safari 17"])
    }

    func testSessionsValidate() throws {
        let moat = try LiveDaemon()
        defer { moat.stop() }
        try moat.createTenant("acme", owner: "owner@acme.test", password: password)
        let swift = moat.swift
        let password = self.password
        let signedIn: Moat_V1_SignInResponse = try blocking {
            try await swift.users.signIn(
                Moat_V1_SignInRequest.with {
                    $0.email = "owner@acme.test"
                    $0.password = password
                }, options: CallOptions(tenant: "acme"))
        }
        let arena = CArena()
        let request = arena.message { moat__v1__validate_request__init($0) }
        request.pointee.token = arena.string(signedIn.sessionToken)
        try assertDecodedIdentically(
            "SessionsValidate", c: request, swift: Moat_V1_ValidateRequest.with { $0.token = signedIn.sessionToken },
            daemon: moat)

        // The real method, from C and from Swift: the same answer.
        let client = try CClient(path: moat.socketPath)
        let token = signedIn.sessionToken
        let fromSwift: Moat_V1_ValidateResponse = try blocking {
            try await swift.sessions.validate(Moat_V1_ValidateRequest.with { $0.token = token }, options: CallOptions(tenant: "acme"))
        }
        let fromC: Moat_V1_ValidateResponse = try client.call(
            "/moat.v1.Sessions/Validate", tenant: "acme", request: base(request), response: "moat.v1.ValidateResponse",
            as: Moat__V1__ValidateResponse.self
        ) { response in
            Moat_V1_ValidateResponse.with {
                $0.sessionID = string(response.session_id)
                $0.userID = string(response.user_id)
                $0.tenantID = string(response.tenant_id)
                $0.role = Moat_V1_TenantRole(rawValue: Int(response.role.rawValue)) ?? .unspecified
                $0.secondFactorSatisfied = response.second_factor_satisfied != 0
                $0.twoFactorSetupRequired = response.two_factor_setup_required != 0
                $0.expiresAtUnix = response.expires_at_unix
                $0.absoluteExpiresAtUnix = response.absolute_expires_at_unix
                $0.email = string(response.email)
            }
        }
        XCTAssertEqual(fromC.sessionID, fromSwift.sessionID)
        XCTAssertEqual(fromC.userID, fromSwift.userID)
        XCTAssertEqual(fromC.tenantID, fromSwift.tenantID)
        XCTAssertEqual(fromC.role, .owner)
        XCTAssertEqual(fromC.email, fromSwift.email)
        XCTAssertEqual(fromC.absoluteExpiresAtUnix, fromSwift.absoluteExpiresAtUnix)
        XCTAssertLessThanOrEqual(abs(fromC.expiresAtUnix - fromSwift.expiresAtUnix), 5)
    }
}
