import MoatCrypto
import XCTest

@testable import MoatCore

/// The sign-in lockout: the pure rule, then through the service for known
/// and unknown emails.
final class LockoutTests: XCTestCase {
    static let wrong = "wrong-password-123"

    // MARK: The rule

    func testScheduleUnderTheDefaultPolicy() {
        let policy = TenantPolicy()
        let now = Timestamp(seconds: 1_000_000)
        var lockout = Lockout()
        for failure in 1...4 {
            lockout = lockout.failed(at: now, policy: policy)
            XCTAssertEqual(lockout.failures, failure)
            XCTAssertNil(lockout.lockedUntil, "failure \(failure) must not lock")
            XCTAssertNil(lockout.retryAfter(at: now))
        }
        // 5th failure: 1 min, then doubling, at most 1 h.
        for (failure, delay) in [(5, 60), (6, 120), (7, 240), (8, 480), (9, 960), (10, 1920), (11, 3600), (12, 3600)] {
            lockout = lockout.failed(at: now, policy: policy)
            XCTAssertEqual(lockout.failures, failure)
            XCTAssertEqual(lockout.lockedUntil, now.adding(seconds: Int64(delay)), "failure \(failure)")
            XCTAssertEqual(lockout.retryAfter(at: now), Int64(delay))
        }
        // However many failures, the wait stays bounded (no overflow).
        for _ in 0..<200 { lockout = lockout.failed(at: now, policy: policy) }
        XCTAssertEqual(lockout.lockedUntil, now.adding(seconds: 3600))
        let absurd = Lockout(failures: Int.max / 2).failed(at: now, policy: policy)
        XCTAssertEqual(absurd.lockedUntil, now.adding(seconds: 3600))
    }

    func testRetryAfterRoundsUpAndEnds() {
        let now = Timestamp(seconds: 1_000_000)
        let lockout = Lockout(failures: 5, lockedUntil: now.adding(seconds: 60))
        XCTAssertEqual(lockout.retryAfter(at: now), 60)
        XCTAssertEqual(lockout.retryAfter(at: Timestamp(milliseconds: now.milliseconds + 999)), 60)
        XCTAssertEqual(lockout.retryAfter(at: Timestamp(milliseconds: now.milliseconds + 1000)), 59)
        XCTAssertEqual(lockout.retryAfter(at: Timestamp(milliseconds: now.milliseconds + 59_999)), 1)
        XCTAssertNil(lockout.retryAfter(at: now.adding(seconds: 60)))
        XCTAssertNil(lockout.retryAfter(at: now.adding(seconds: 6000)))

        let error = Lockout.lockedError(retryAfter: 42)
        XCTAssertEqual(error.kind, .resourceExhausted)
        XCTAssertEqual(error.reason, "SIGN_IN_LOCKED")
        XCTAssertEqual(error.details, ["retry_after_seconds": "42"])
    }

    func testCustomPolicySchedule() {
        var policy = TenantPolicy()
        policy.lockoutThreshold = 3
        policy.lockoutBaseDelaySeconds = 10
        policy.lockoutMaxDelaySeconds = 45
        let now = Timestamp(seconds: 0)
        var lockout = Lockout()
        var delays: [Int64?] = []
        for _ in 0..<6 {
            lockout = lockout.failed(at: now, policy: policy)
            delays.append(lockout.retryAfter(at: now))
        }
        XCTAssertEqual(delays, [nil, nil, 10, 20, 40, 45])
    }

    // MARK: Through the service

    func testFifthFailureLocksEvenTheRightPasswordForOneMinute() async throws {
        let world = try World()
        let (tenant, owner) = try await world.makeTenant()
        for _ in 1...4 {
            await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
                try await world.signIn(tenant, Fixture.ownerEmail, Self.wrong)
            }
        }
        let stored4 = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored4?.failedSignIns, 4)
        XCTAssertNil(stored4?.lockedUntil)

        let lockedAt = world.clock.now()
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, Fixture.ownerEmail, Self.wrong)
        }
        let stored5 = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored5?.failedSignIns, 5)
        XCTAssertEqual(stored5?.lockedUntil, lockedAt.adding(seconds: 60))

        let error = await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        }
        XCTAssertEqual(error?.details["retry_after_seconds"], "60")
        let live = try await world.liveSessions(tenant, owner.id)
        XCTAssertTrue(live.isEmpty)
        // A locked attempt is neither checked nor written: the failure that
        // locked the account is the last log line.
        let log = try await world.securityLog(tenant, owner.id)
        XCTAssertEqual(log.last?.kind, .signInFailed)
        XCTAssertEqual(log.filter { $0.kind == .signInFailed }.count, 5)

        // Attempts while locked neither count nor extend the wait.
        world.clock.advance(seconds: 30)
        for _ in 0..<3 {
            let later = await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
                try await world.signIn(tenant, Fixture.ownerEmail, Self.wrong)
            }
            XCTAssertEqual(later?.details["retry_after_seconds"], "30")
        }
        let stillFive = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stillFive?.failedSignIns, 5)
        XCTAssertEqual(stillFive?.lockedUntil, lockedAt.adding(seconds: 60))

        world.clock.advance(milliseconds: 29_999)
        let last = await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        }
        XCTAssertEqual(last?.details["retry_after_seconds"], "1")

        // The wait ends; success resets the count.
        world.clock.advance(milliseconds: 1)
        let result = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        XCTAssertEqual(result.user.failedSignIns, 0)
        XCTAssertNil(result.user.lockedUntil)
        let reset = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(reset?.failedSignIns, 0)
        XCTAssertNil(reset?.lockedUntil)
    }

    func testWaitDoublesToAtMostOneHourAndAlwaysEnds() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        for _ in 1...4 { _ = try? await world.signIn(tenant, Fixture.ownerEmail, Self.wrong) }
        for delay in [60, 120, 240, 480, 960, 1920, 3600, 3600] {
            await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
                try await world.signIn(tenant, Fixture.ownerEmail, Self.wrong)
            }
            let error = await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
                try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
            }
            XCTAssertEqual(error?.details["retry_after_seconds"], "\(delay)")
            world.clock.advance(seconds: Int64(delay) - 1)
            await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
                try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
            }
            world.clock.advance(seconds: 1)
        }
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
    }

    func testSuccessResetsTheCount() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        for _ in 1...4 { _ = try? await world.signIn(tenant, Fixture.ownerEmail, Self.wrong) }
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        // Four more failures are again below the threshold.
        for _ in 1...4 {
            await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
                try await world.signIn(tenant, Fixture.ownerEmail, Self.wrong)
            }
        }
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
    }

    func testTenantPolicyThresholdAndDelays() async throws {
        let world = try World()
        let (initial, _) = try await world.makeTenant()
        let tenant = try await world.setPolicy(initial) {
            $0.lockoutThreshold = 2
            $0.lockoutBaseDelaySeconds = 10
            $0.lockoutMaxDelaySeconds = 15
        }
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, Fixture.ownerEmail, Self.wrong)
        }
        for delay in [10, 15, 15] {
            await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
                try await world.signIn(tenant, Fixture.ownerEmail, Self.wrong)
            }
            let error = await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
                try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
            }
            XCTAssertEqual(error?.details["retry_after_seconds"], "\(delay)")
            world.clock.advance(seconds: Int64(delay))
        }
        _ = try await world.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
    }

    /// The same sequence of attempts gets the same sequence of answers for
    /// an unknown email as for a known one with wrong passwords.
    func testUnknownEmailLocksOutExactlyLikeAKnownOne() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let ghost = "ghost@acme.test"

        func attempt(_ email: String) async -> DomainError? {
            do {
                _ = try await world.signIn(tenant, email, Self.wrong)
                return nil
            } catch {
                return error as? DomainError
            }
        }
        var known: [DomainError?] = []
        var unknown: [DomainError?] = []
        // Failures, locked attempts, waits (partial and whole), more failures.
        let steps: [Int64] = [0, 0, 0, 0, 0, 0, 20, 40, 0, 0, 119, 1, 0, 0, 240, 0]
        for wait in steps {
            world.clock.advance(seconds: wait)
            known.append(await attempt(Fixture.ownerEmail))
            unknown.append(await attempt(ghost))
        }
        XCTAssertEqual(unknown.count, known.count)
        for (index, (k, u)) in zip(known, unknown).enumerated() {
            XCTAssertNotNil(k)
            XCTAssertEqual(u, k, "attempt \(index + 1)")
        }
        XCTAssertEqual(known.compactMap { $0?.reason }.filter { $0 == "SIGN_IN_LOCKED" }.count, 8)
        // And the address is normalized in the throttle too.
        let shouted = await attempt("  GHOST@Acme.Test ")
        XCTAssertEqual(shouted, known.last ?? nil)
    }

    func testUnknownEmailThrottleIsPerTenant() async throws {
        let world = try World()
        let (acme, _) = try await world.makeTenant(slug: "acme")
        let (globex, _) = try await world.makeTenant(slug: "globex", ownerEmail: "owner@globex.test")
        for _ in 1...5 { _ = try? await world.signIn(acme, "ghost@acme.test", Self.wrong) }
        await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.signIn(acme, "ghost@acme.test", Self.wrong)
        }
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(globex, "ghost@acme.test", Self.wrong)
        }
        // Locking an address in one tenant leaves the same account name elsewhere alone.
        for _ in 1...5 { _ = try? await world.signIn(acme, "owner@globex.test", Self.wrong) }
        _ = try await world.signIn(globex, "owner@globex.test", Fixture.ownerPassword)
    }

    /// A burst of concurrent wrong passwords must not buy more guesses than
    /// the threshold: once `lockoutThreshold` failures are in, the rest wait.
    func testConcurrentAttemptsGetNoMoreGuessesThanTheThreshold() async throws {
        // Slow enough that every attempt starts before the first check ends.
        let world = try World(parameters: Argon2Parameters(memoryKiB: 8192, iterations: 2, parallelism: 1))
        let (tenant, owner) = try await world.makeTenant()
        let reasons = await Self.burst(world, tenant, email: Fixture.ownerEmail, count: 12)
        XCTAssertEqual(reasons.count, 12)
        XCTAssertEqual(
            reasons.filter { $0 == "INVALID_CREDENTIALS" }.count, 5,
            "password checks made in a burst of 12 with a threshold of 5: \(reasons)")
        XCTAssertEqual(reasons.filter { $0 == "SIGN_IN_LOCKED" }.count, 7, "\(reasons)")
        let stored = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored?.failedSignIns, 5)
    }

    /// Lockout must not tell known from unknown emails, also under
    /// concurrency: after a burst of failures both are locked.
    func testConcurrentFailuresLockUnknownEmailsLikeKnownOnes() async throws {
        let world = try World(parameters: Argon2Parameters(memoryKiB: 8192, iterations: 2, parallelism: 1))
        let (tenant, owner) = try await world.makeTenant()
        _ = await Self.burst(world, tenant, email: Fixture.ownerEmail, count: 5)
        _ = await Self.burst(world, tenant, email: "ghost@acme.test", count: 5)
        let stored = try await world.storedUser(tenant, owner.id)
        XCTAssertEqual(stored?.failedSignIns, 5)

        let known = await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.signIn(tenant, Fixture.ownerEmail, Self.wrong)
        }
        let unknown = await assertDomainError(.resourceExhausted, "SIGN_IN_LOCKED") {
            try await world.signIn(tenant, "ghost@acme.test", Self.wrong)
        }
        XCTAssertEqual(unknown?.details, known?.details)
    }

    /// Runs `count` wrong-password sign-ins at once; returns their reasons.
    static func burst(_ world: World, _ tenant: Tenant, email: String, count: Int) async -> [String] {
        await withTaskGroup(of: String.self) { group in
            for _ in 0..<count {
                group.addTask {
                    do {
                        _ = try await world.signIn(tenant, email, wrong)
                        return "OK"
                    } catch let error as DomainError {
                        return error.reason
                    } catch {
                        return "\(error)"
                    }
                }
            }
            var reasons: [String] = []
            for await reason in group { reasons.append(reason) }
            return reasons
        }
    }
}
