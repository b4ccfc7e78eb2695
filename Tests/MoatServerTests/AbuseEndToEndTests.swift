import Foundation
import Logging
import MoatClient
import MoatCore
import MoatCrypto
import MoatProto
import XCTest

@testable import MoatServer

/// The abuse defences over the wire, on SQLite: the per-address throttle
/// (and its count across a restart), the new-device notice, and a reset
/// that restores an account pending deletion.
final class AbuseEndToEndTests: XCTestCase {
    private let password = "correct horse battery"

    /// A daemon on a data directory that outlives it, so a test can restart.
    private final class Daemon: @unchecked Sendable {
        let daemon: MoatDaemon
        let client: MoatClient
        private let task: Task<Void, Error>

        init(directory: String, addressFailureLimit: Int = 20) async throws {
            var configuration = MoatConfiguration()
            configuration.dataDirectory = directory
            configuration.hashing.parameters = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
            configuration.accounts.addressThrottle.failureLimit = addressFailureLimit
            daemon = try await MoatDaemon.open(configuration: configuration, logger: Logger(label: "test"))
            try await daemon.server.start()
            let daemon = self.daemon
            task = Task { try await daemon.run() }
            client = MoatClient(socketPath: daemon.configuration.socketPath)
        }

        func stop() async throws {
            await client.close()
            await daemon.shutdown()
            try await task.value
        }

        func events(_ type: String) async throws -> [EventRecord] {
            try await daemon.store.read { try $0.events(after: 0, limit: 10_000) }.filter { $0.type == type }
        }
    }

    private func directory() -> String { NSTemporaryDirectory() + "moat-abuse-" + UUID().uuidString.prefix(8) }

    private func createTenant(_ moat: Daemon, _ slug: String) async throws {
        _ = try await moat.client.tenants.create(
            .with {
                $0.slug = slug
                $0.name = slug
                $0.ownerEmail = "owner@\(slug).test"
                $0.ownerPassword = password
            })
    }

    private func signIn(
        _ moat: Daemon, _ tenant: String, password: String, ip: String,
        agent: String = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"
    ) async throws -> Moat_V1_SignInResponse {
        // client-ip as envelope metadata, the way calling services pass it.
        try await moat.client.users.signIn(
            .with {
                $0.email = "owner@\(tenant).test"
                $0.password = password
                $0.client.userAgent = agent
                $0.client.location = "Berlin, DE"
            }, options: CallOptions(tenant: tenant, metadata: ["client-ip": ip]))
    }

    func testTheAddressThrottleAcrossTenantsAndARestart() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var moat = try await Daemon(directory: path, addressFailureLimit: 3)
        try await createTenant(moat, "acme")
        try await createTenant(moat, "globex")
        for tenant in ["acme", "globex", "acme"] {
            await expectRPCError(.unauthenticated, "INVALID_CREDENTIALS") {
                _ = try await self.signIn(moat, tenant, password: "wrong password 1", ip: "192.0.2.66")
            }
        }
        do {
            _ = try await signIn(moat, "globex", password: password, ip: "192.0.2.66")
            XCTFail("the address is throttled")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .resourceExhausted)
            XCTAssertEqual(error.reason, "ADDRESS_THROTTLED")
            XCTAssertTrue((1...900).contains(Int(error.details["retry_after_seconds"] ?? "") ?? 0), "\(error.details)")
        }
        _ = try await signIn(moat, "globex", password: password, ip: "192.0.2.67")

        // The count is in the database: a restart does not clear it.
        try await moat.stop()
        moat = try await Daemon(directory: path, addressFailureLimit: 3)
        await expectRPCError(.resourceExhausted, "ADDRESS_THROTTLED") {
            _ = try await self.signIn(moat, "acme", password: self.password, ip: "192.0.2.66")
        }
        try await moat.stop()
    }

    func testANewDeviceSignInEmitsSessionNewDevice() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let moat = try await Daemon(directory: path)
        try await createTenant(moat, "acme")
        _ = try await signIn(moat, "acme", password: password, ip: "203.0.113.9")
        // Same browser family, another version, same /24: still known.
        _ = try await signIn(
            moat, "acme", password: password, ip: "203.0.113.77",
            agent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
        let noNotices = try await moat.events("session.new_device")
        XCTAssertEqual(noNotices.count, 0)

        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
        let signedIn = try await signIn(moat, "acme", password: password, ip: "198.51.100.4", agent: chrome)
        let notices = try await moat.events("session.new_device")
        XCTAssertEqual(notices.count, 1)
        let notice = try Moat_V1_SessionNewDevice(serializedBytes: notices.first?.payload ?? [])
        XCTAssertEqual(notice.email, "owner@acme.test")
        XCTAssertEqual(notice.sessionID, signedIn.session.id)
        XCTAssertEqual(notice.deviceType, "desktop")
        XCTAssertEqual(notice.os, "Windows")
        XCTAssertEqual(notice.browser, "Chrome")
        XCTAssertEqual(notice.ip, "198.51.100.4")
        XCTAssertEqual(notice.location, "Berlin, DE")
        XCTAssertGreaterThan(notice.signedInAtUnix, 1_700_000_000)
        XCTAssertEqual(EventPayloadTypes.name(forEventType: "session.new_device"), "moat.v1.SessionNewDevice")
        try await moat.stop()
    }

    func testAResetDuringTheGracePeriodRestoresTheAccount() async throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let moat = try await Daemon(directory: path)
        try await createTenant(moat, "acme")
        let owner = try await signIn(moat, "acme", password: password, ip: "203.0.113.9")
        _ = try await moat.client.users.create(
            .with {
                $0.email = "member@acme.test"
                $0.password = "member password 1"
            }, options: CallOptions(tenant: "acme", authorization: owner.sessionToken))
        let member = try await moat.client.users.signIn(
            .with {
                $0.email = "member@acme.test"
                $0.password = "member password 1"
            }, options: CallOptions(tenant: "acme"))
        _ = try await moat.client.users.requestDeletion(
            .with {
                $0.confirmation = "DELETE"
                $0.password = "member password 1"
            }, options: CallOptions(tenant: "acme", authorization: member.sessionToken))

        _ = try await moat.client.users.requestPasswordReset(
            .with { $0.email = "member@acme.test" }, options: CallOptions(tenant: "acme"))
        let links = try await moat.events("password_reset.requested")
        let requested = try XCTUnwrap(links.last)
        let link = try Moat_V1_PasswordResetRequested(serializedBytes: requested.payload)
        XCTAssertTrue(link.restoresAccount)
        _ = try await moat.client.users.resetPassword(
            .with {
                $0.token = link.token
                $0.newPassword = "a brand new password 7"
            }, options: CallOptions(tenant: "acme"))
        let restored = try await moat.events("account.restored")
        XCTAssertEqual(restored.count, 1)
        let again = try await moat.client.users.signIn(
            .with {
                $0.email = "member@acme.test"
                $0.password = "a brand new password 7"
            }, options: CallOptions(tenant: "acme"))
        XCTAssertFalse(again.sessionToken.isEmpty)
        try await moat.stop()
    }
}
