import MoatCrypto
import XCTest

@testable import MoatCore

/// `session.new_device`: a sign-in from a device family and network the
/// user has not signed in from within the configured days.
final class NewDeviceNoticeTests: XCTestCase {
    /// "OS/Browser/version": the family is the first two parts, so a new
    /// version is the same device.
    private static let classifier: DeviceClassifier = { agent in
        let parts = agent.split(separator: "/").map(String.init)
        return DeviceFamily(deviceType: "desktop", os: parts.first ?? "", browser: parts.count > 1 ? parts[1] : "")
    }

    private struct Setup {
        let world: World
        let accounts: AccountService
        let tenant: Tenant
    }

    private func setup(days: Int = 90) async throws -> Setup {
        let world = try World()
        var configuration = AccountConfiguration()
        configuration.newDeviceWindowDays = days
        let accounts = AccountService(
            store: world.store, hasher: world.hasher, clock: world.clock, configuration: configuration,
            deviceFamily: Self.classifier)
        let (tenant, _) = try await accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: Fixture.ownerEmail, ownerPassword: Fixture.ownerPassword)
        return Setup(world: world, accounts: accounts, tenant: tenant)
    }

    private func signIn(_ setup: Setup, agent: String, ip: String, location: String = "Lisbon, PT") async throws
        -> [DomainEvent]
    {
        let before = setup.world.lastSequence
        _ = try await setup.accounts.signIn.signIn(
            tenant: setup.tenant, email: Fixture.ownerEmail, password: Fixture.ownerPassword,
            client: ClientDetails(userAgent: agent, ip: ip, location: location, deviceName: "laptop"))
        return try setup.world.events(after: before).map(\.event).filter {
            if case .sessionNewDevice = $0 { return true }
            return false
        }
    }

    func testFirstSignInSameDeviceAgainAndANewDevice() async throws {
        let setup = try await setup()
        // The account's first sign-in: nothing to compare with, no notice.
        let found1 = try await signIn(setup, agent: "macOS/Safari/17", ip: "192.0.2.10")
        XCTAssertEqual(found1, [])
        // Same family (a newer version), same /24: no notice.
        setup.world.clock.advance(seconds: 3600)
        let found2 = try await signIn(setup, agent: "macOS/Safari/18", ip: "192.0.2.99")
        XCTAssertEqual(found2, [])

        // Another browser on the same network: a new device.
        setup.world.clock.advance(seconds: 60)
        let at = setup.world.clock.now()
        let notices = try await signIn(setup, agent: "Windows/Chrome/131", ip: "192.0.2.10", location: "Porto, PT")
        XCTAssertEqual(notices.count, 1)
        guard case .sessionNewDevice(
            let userID, let email, let sessionID, let deviceType, let os, let browser, let ip, let location, let name,
            let signedInAt)? = notices.first
        else { return XCTFail("expected session.new_device") }
        let owner = try await setup.world.store.read { try $0.user(tenant: setup.tenant.id, email: Fixture.ownerEmail) }
        XCTAssertEqual(userID, owner?.id)
        XCTAssertEqual(email, Fixture.ownerEmail)
        let sessions = try await setup.world.store.read { try $0.sessions(tenant: setup.tenant.id, user: userID) }
        XCTAssertEqual(sessions.max { $0.createdAt < $1.createdAt }?.id, sessionID)
        XCTAssertEqual([deviceType, os, browser, ip, location, name], ["desktop", "Windows", "Chrome", "192.0.2.10", "Porto, PT", "laptop"])
        XCTAssertEqual(signedInAt, at)
        XCTAssertEqual(notices.first.map { $0.type }, "session.new_device")

        // That device is known now.
        let found3 = try await signIn(setup, agent: "Windows/Chrome/132", ip: "192.0.2.11")
        XCTAssertEqual(found3, [])
    }

    func testANewNetworkIsANewDeviceAndIPv6ComparesSlash48() async throws {
        let setup = try await setup()
        _ = try await signIn(setup, agent: "macOS/Safari/17", ip: "192.0.2.10")
        let found4 = try await signIn(setup, agent: "macOS/Safari/17", ip: "192.0.3.10").count
        XCTAssertEqual(found4, 1)
        let found5 = try await signIn(setup, agent: "macOS/Safari/17", ip: "2001:db8:5::1").count
        XCTAssertEqual(found5, 1)
        let found6 = try await signIn(setup, agent: "macOS/Safari/17", ip: "2001:db8:5:ffff::2").count
        XCTAssertEqual(found6, 0)
        let found7 = try await signIn(setup, agent: "macOS/Safari/17", ip: "2001:db8:6::1").count
        XCTAssertEqual(found7, 1)
        // No address at all is a network of its own, remembered like any other.
        let found8 = try await signIn(setup, agent: "macOS/Safari/17", ip: "").count
        XCTAssertEqual(found8, 1)
        let found9 = try await signIn(setup, agent: "macOS/Safari/17", ip: "").count
        XCTAssertEqual(found9, 0)
    }

    func testADeviceUnusedForTheWindowIsNewAgainAndZeroTurnsItOff() async throws {
        let setup = try await setup(days: 30)
        _ = try await signIn(setup, agent: "macOS/Safari/17", ip: "192.0.2.10")
        setup.world.clock.advance(seconds: 29 * 86400)
        let found10 = try await signIn(setup, agent: "macOS/Safari/17", ip: "192.0.2.10").count
        XCTAssertEqual(found10, 0)
        setup.world.clock.advance(seconds: 30 * 86400 + 1)
        let found11 = try await signIn(setup, agent: "macOS/Safari/17", ip: "192.0.2.10").count
        XCTAssertEqual(found11, 1)

        let off = try await self.setup(days: 0)
        _ = try await signIn(off, agent: "macOS/Safari/17", ip: "192.0.2.10")
        let found12 = try await signIn(off, agent: "Linux/Firefox/1", ip: "198.51.100.1").count
        XCTAssertEqual(found12, 0)
    }

    func testATwoFactorSignInIsNoticedWhenItCompletes() async throws {
        let setup = try await setup()
        let first = try await setup.accounts.signIn.signIn(
            tenant: setup.tenant, email: Fixture.ownerEmail, password: Fixture.ownerPassword,
            client: ClientDetails(userAgent: "macOS/Safari/17", ip: "192.0.2.10"))
        let enrollment = try await setup.accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: setup.tenant, token: first.token, password: Fixture.ownerPassword, client: Fixture.client)
        let secret = try XCTUnwrap(Base32.decode(enrollment.secretBase32.replacingOccurrences(of: " ", with: "")))
        _ = try await setup.accounts.twoFactor.confirmTwoFactorEnrollment(
            tenant: setup.tenant, token: first.token, code: try TOTP(secret: secret).code(at: setup.world.clock.now().seconds),
            client: Fixture.client)
        let before = setup.world.lastSequence
        guard case .secondFactorRequired(let challenge) = try await setup.accounts.signIn.beginSignIn(
            tenant: setup.tenant, email: Fixture.ownerEmail, password: Fixture.ownerPassword,
            client: ClientDetails(userAgent: "Android/Chrome/120", ip: "203.0.113.4"))
        else { return XCTFail("expected a challenge") }
        XCTAssertFalse(try setup.world.events(after: before).contains { $0.event.type == "session.new_device" })
        setup.world.clock.advance(seconds: 30)
        _ = try await setup.accounts.signIn.completeSignIn(
            tenant: setup.tenant, challenge: challenge.token,
            code: try TOTP(secret: secret).code(at: setup.world.clock.now().seconds), recoveryCode: "",
            client: ClientDetails())
        let notices = try setup.world.events(after: before).filter { $0.event.type == "session.new_device" }
        XCTAssertEqual(notices.count, 1)
        if case .sessionNewDevice(_, _, _, _, let os, _, let ip, _, _, _)? = notices.first?.event {
            XCTAssertEqual(os, "Android")
            XCTAssertEqual(ip, "203.0.113.4")
        }
    }
}
