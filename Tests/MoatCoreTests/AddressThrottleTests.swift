import XCTest

@testable import MoatCore

/// The per-address sign-in throttle (credential stuffing): failures from
/// one client address count across accounts and tenants.
final class AddressThrottleTests: XCTestCase {
    private func world(limit: Int = 5, window: Int64 = 900) throws -> World {
        var configuration = AccountConfiguration()
        configuration.addressThrottle = AddressThrottlePolicy(failureLimit: limit, windowSeconds: window)
        return try World(configuration: configuration)
    }

    private func client(_ ip: String) -> ClientDetails { ClientDetails(userAgent: Fixture.client.userAgent, ip: ip) }

    private func assertThrottled(
        _ body: () async throws -> Void, maxWait: Int64 = 900, file: StaticString = #filePath, line: UInt = #line
    ) async {
        do {
            try await body()
            XCTFail("expected ADDRESS_THROTTLED", file: file, line: line)
        } catch let error as DomainError {
            XCTAssertEqual(error.kind, .resourceExhausted, file: file, line: line)
            XCTAssertEqual(error.reason, "ADDRESS_THROTTLED", file: file, line: line)
            let wait = Int64(error.details["retry_after_seconds"] ?? "") ?? -1
            XCTAssertTrue((1...maxWait).contains(wait), "retry_after_seconds \(wait)", file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    private func assertInvalidCredentials(_ body: () async throws -> Void, file: StaticString = #filePath, line: UInt = #line)
        async
    {
        do {
            try await body()
            XCTFail("expected INVALID_CREDENTIALS", file: file, line: line)
        } catch let error as DomainError {
            XCTAssertEqual(error.reason, "INVALID_CREDENTIALS", file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    func testFailuresAcrossAccountsAndTenantsThrottleTheAddressWithoutHashing() async throws {
        let world = try world(limit: 5)
        let (acme, _) = try await world.makeTenant()
        let (globex, _) = try await world.makeTenant(slug: "globex", name: "Globex", ownerEmail: "boss@globex.test")
        try await world.makeUser(globex, email: "victim@globex.test")
        let attacker = client("192.0.2.50")
        // Five different accounts, two tenants, one address: unknown emails and a wrong password alike.
        for index in 0..<3 {
            await assertInvalidCredentials {
                _ = try await world.signIn(acme, "nobody\(index)@acme.test", "guess-\(index)-password", client: attacker)
            }
        }
        await assertInvalidCredentials {
            _ = try await world.signIn(globex, "victim@globex.test", "wrong-password-1", client: attacker)
        }
        await assertInvalidCredentials {
            _ = try await world.signIn(acme, Fixture.ownerEmail, "wrong-password-2", client: attacker)
        }
        // Now even the right password from that address is refused unchecked.
        await assertThrottled { _ = try await world.signIn(globex, "victim@globex.test", Fixture.memberPassword, client: attacker) }
        await assertThrottled {
            _ = try await world.accounts.deletion.restoreAccount(
                tenant: acme, email: Fixture.ownerEmail, password: Fixture.ownerPassword, code: "", client: attacker)
        }
        // Another address is unaffected.
        _ = try await world.signIn(globex, "victim@globex.test", Fixture.memberPassword, client: client("192.0.2.51"))

        // Without hashing: no hash job runs for the throttled attempt, and with
        // the hasher refusing, the throttled address still gets its answer
        // while any checked attempt fails in the hasher.
        let hashed = world.hashing.jobsRun
        await assertThrottled { _ = try await world.signIn(acme, "someone@acme.test", "whatever-password", client: attacker) }
        XCTAssertEqual(world.hashing.jobsRun, hashed)
        world.hashing.refuse(true)
        await assertThrottled { _ = try await world.signIn(acme, "someone@acme.test", "whatever-password", client: attacker) }
        do {
            _ = try await world.signIn(acme, "someone@acme.test", "whatever-password", client: client("192.0.2.52"))
            XCTFail("a checked attempt needs the hasher")
        } catch let error as DomainError {
            XCTAssertNotEqual(error.reason, "ADDRESS_THROTTLED")
            XCTAssertNotEqual(error.reason, "INVALID_CREDENTIALS")
        }
    }

    func testTheWindowEndsAndSuccessesDoNotResetIt() async throws {
        let world = try world(limit: 3, window: 600)
        let (acme, _) = try await world.makeTenant()
        let ip = client("198.51.100.9")
        for index in 0..<2 {
            await assertInvalidCredentials { _ = try await world.signIn(acme, "x\(index)@acme.test", "bad-password-x", client: ip) }
        }
        // A hit in the middle of a stuffing run does not clear the count.
        _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: ip)
        world.clock.advance(seconds: 100)
        await assertInvalidCredentials { _ = try await world.signIn(acme, "x9@acme.test", "bad-password-x", client: ip) }
        await assertThrottled(
            { _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: ip) }, maxWait: 500)
        world.clock.advance(seconds: 499)
        await assertThrottled(
            { _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: ip) }, maxWait: 1)
        world.clock.advance(seconds: 1)
        _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: ip)
    }

    func testAMissingOrUnparseableAddressSharesOneBucketPerTenant() async throws {
        let world = try world(limit: 4)
        let (acme, _) = try await world.makeTenant()
        let (globex, _) = try await world.makeTenant(slug: "globex", name: "Globex", ownerEmail: "boss@globex.test")
        // No address, a host name, a port, garbage: one bucket in acme.
        for ip in ["", "proxy.internal", "192.0.2.1:443", "not an address"] {
            await assertInvalidCredentials { _ = try await world.signIn(acme, "n@acme.test", "bad-password-n", client: client(ip)) }
        }
        await assertThrottled { _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: client("")) }
        await assertThrottled {
            _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: client("999.1.1.1"))
        }
        // Another tenant's address-less callers have their own bucket; real addresses in acme are unaffected.
        _ = try await world.signIn(globex, "boss@globex.test", Fixture.ownerPassword, client: client(""))
        _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: client("192.0.2.1"))
    }

    func testIPv6CountsPerSlash64AndMappedIPv4IsIPv4() async throws {
        let world = try world(limit: 3)
        let (acme, _) = try await world.makeTenant()
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2:aaaa::5", "[2001:0db8:0001:0002:ffff::9]"] {
            await assertInvalidCredentials { _ = try await world.signIn(acme, "v6@acme.test", "bad-password-6", client: client(ip)) }
        }
        await assertThrottled {
            _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: client("2001:db8:1:2::77"))
        }
        _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: client("2001:db8:1:3::1"))

        for ip in ["203.0.113.5", "::ffff:203.0.113.5", "::ffff:cb00:7105"] {
            await assertInvalidCredentials { _ = try await world.signIn(acme, "v4@acme.test", "bad-password-4", client: client(ip)) }
        }
        await assertThrottled {
            _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: client("203.0.113.5"))
        }
        _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: client("203.0.113.6"))
    }

    func testZeroTurnsTheThrottleOff() async throws {
        let world = try world(limit: 0)
        let (acme, _) = try await world.makeTenant()
        for index in 0..<25 {
            await assertInvalidCredentials {
                _ = try await world.signIn(acme, "s\(index)@acme.test", "bad-password-s", client: self.client("192.0.2.8"))
            }
        }
        _ = try await world.signIn(acme, Fixture.ownerEmail, Fixture.ownerPassword, client: client("192.0.2.8"))
    }

    func testTheDefaultIsTwentyFailuresInFifteenMinutes() {
        let policy = AccountConfiguration().addressThrottle
        XCTAssertEqual(policy.failureLimit, 20)
        XCTAssertEqual(policy.windowSeconds, 900)
    }

    func testTheMemoryCounterIsBoundedAndForgetsTheHarmlessFirst() {
        let counter = MemoryAddressFailureCounter(capacity: 3)
        let now = Timestamp(seconds: 1_000)
        for _ in 0..<5 { counter.recordFailure(key: "held", at: now, windowSeconds: 900) }
        for index in 0..<10 { counter.recordFailure(key: "k\(index)", at: now, windowSeconds: 900) }
        XCTAssertEqual(counter.count, 3)
        XCTAssertEqual(counter.window(key: "held", at: now, windowSeconds: 900)?.failures, 5)
        XCTAssertEqual(counter.window(key: "k9", at: now, windowSeconds: 900)?.failures, 1)
        // Ended windows are neither reported nor kept when room is needed.
        let later = now.adding(seconds: 900)
        XCTAssertNil(counter.window(key: "held", at: later, windowSeconds: 900))
        counter.recordFailure(key: "fresh", at: later, windowSeconds: 900)
        XCTAssertEqual(counter.count, 1)
        XCTAssertEqual(counter.recordFailure(key: "fresh", at: later, windowSeconds: 900).failures, 2)
    }

    func testClientAddressParsing() {
        XCTAssertEqual(ClientAddress("192.0.2.1")?.bytes, [192, 0, 2, 1])
        XCTAssertEqual(ClientAddress("192.0.2.1")?.network, "192.0.2/24")
        XCTAssertEqual(ClientAddress("192.0.2.1")?.throttleKey, "192.0.2.1/32")
        XCTAssertEqual(ClientAddress("::ffff:192.0.2.1"), ClientAddress("192.0.2.1"))
        XCTAssertEqual(ClientAddress("2001:db8::1")?.bytes.count, 16)
        XCTAssertEqual(ClientAddress("2001:db8:aa:bb::1")?.network, "2001:db8:aa::/48")
        XCTAssertEqual(ClientAddress("2001:db8:aa:bb::1")?.throttleKey, "2001:db8:aa:bb::/64")
        XCTAssertEqual(ClientAddress("fe80::1%eth0"), ClientAddress("fe80::1"))
        XCTAssertNotNil(ClientAddress("::"))
        XCTAssertNotNil(ClientAddress("::1"))
        XCTAssertNotNil(ClientAddress("1:2:3:4:5:6:7:8"))
        for bad in [
            "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "a.b.c.d", ":::", "1::2::3", "1:2:3:4:5:6:7:8:9",
            "12345::", "g::1", "1:2:3:4:5:6:7::8", "::1.2.3", "[::1", "localhost", "١.٢.٣.٤", String(repeating: "1", count: 100),
        ] {
            XCTAssertNil(ClientAddress(bad), bad)
        }
    }
}
