import Synchronization
import XCTest

@testable import MoatCore

/// What one Validate call answered during a race.
enum SessionRaceOutcome: Sendable, Equatable {
    case accepted
    case rejected
    case failed(String)
}

/// Shared by the validating tasks and the revoking task of one round.
final class SessionRaceState: Sendable {
    /// Set right after the revoking call returned.
    let revoked = Atomic<Bool>(false)
    /// Validate calls finished so far.
    let calls = Atomic<Int>(0)
}

/// One Validate: `validateCached` first when asked (falling back to the
/// store like the handler does), else `validate`.
func sessionRaceAttempt(
    _ accounts: AccountService, _ tenant: String, _ token: String, cachedFirst: Bool
) async -> SessionRaceOutcome {
    if cachedFirst {
        switch accounts.validateCached(tenantReference: tenant, token: token) {
        case .success?: return .accepted
        case .failure(let error)?: return error.reason == "SESSION_INVALID" ? .rejected : .failed("\(error)")
        case nil: break
        }
    }
    do {
        _ = try await accounts.validate(tenantReference: tenant, token: token)
        return .accepted
    } catch let error as DomainError where error.reason == "SESSION_INVALID" {
        return .rejected
    } catch {
        return .failed("\(error)")
    }
}

final class SessionConcurrencyTests: XCTestCase {
    // MARK: The epoch rule, on the cache itself

    func testLoadThatStartedBeforeAnInvalidationIsNotCached() {
        let cache = SessionCache()
        let (validated, hash) = sessionFixture()
        let tenant = validated.session.tenantID
        let now = validated.session.createdAt
        guard case .miss(let epoch) = cache.validate(tenant: tenant, tokenHash: hash, now: now) else {
            return XCTFail("an empty cache answered")
        }
        // The load is in flight; the user's sessions get revoked meanwhile.
        cache.invalidate(user: validated.session.userID)
        cache.insert(validated, loadedAt: epoch)
        guard case .miss(let fresh) = cache.validate(tenant: tenant, tokenHash: hash, now: now) else {
            return XCTFail("a load older than the invalidation was cached")
        }
        XCTAssertNotEqual(fresh, epoch, "the invalidation did not move the epoch")
        XCTAssertEqual(cache.statistics.entries, 0)
        // Control: a load under the current epoch is cached.
        cache.insert(validated, loadedAt: fresh)
        XCTAssertEqual(cache.validate(tenant: tenant, tokenHash: hash, now: now), .hit(validated.withoutDisplayFields))
    }

    func testLoadThatStartedBeforeInvalidateAllIsNotCached() {
        let cache = SessionCache()
        let (validated, hash) = sessionFixture()
        let tenant = validated.session.tenantID
        let now = validated.session.createdAt
        guard case .miss(let epoch) = cache.validate(tenant: tenant, tokenHash: hash, now: now) else {
            return XCTFail("an empty cache answered")
        }
        cache.invalidateAll()
        cache.insert(validated, loadedAt: epoch)
        guard case .miss = cache.validate(tenant: tenant, tokenHash: hash, now: now) else {
            return XCTFail("a load older than invalidateAll was cached")
        }
    }

    func testInvalidateDropsOnlyThatUsersEntries() {
        let cache = SessionCache()
        let user = UserID.random()
        let tenant = TenantID.random()
        let (mine, myHash) = sessionFixture(tenant: tenant, user: user)
        let (also, alsoHash) = sessionFixture(tenant: tenant, user: user)
        let (other, otherHash) = sessionFixture(tenant: tenant)
        let now = mine.session.createdAt
        for (validated, hash) in [(mine, myHash), (also, alsoHash), (other, otherHash)] {
            guard case .miss(let epoch) = cache.validate(tenant: tenant, tokenHash: hash, now: now) else {
                return XCTFail("an empty cache answered")
            }
            cache.insert(validated, loadedAt: epoch)
        }
        XCTAssertEqual(cache.statistics.entries, 3)
        cache.invalidate(user: user)
        XCTAssertEqual(cache.statistics.entries, 1)
        guard case .miss = cache.validate(tenant: tenant, tokenHash: myHash, now: now) else {
            return XCTFail("invalidated entry still answers")
        }
        guard case .miss = cache.validate(tenant: tenant, tokenHash: alsoHash, now: now) else {
            return XCTFail("invalidated entry still answers")
        }
        guard case .hit = cache.validate(tenant: tenant, tokenHash: otherHash, now: now) else {
            return XCTFail("another user's entry was dropped")
        }
    }

    // MARK: The epoch rule, through the service

    /// A Validate whose store load ran before a revocation, and finishes
    /// after it, must not leave the revoked session in the cache.
    func testValidateRacingRevokeAllDoesNotCacheTheRevokedSession() async throws {
        try await racingLoad { s, accounts, tenant, member, _ in
            _ = try await accounts.sessions.revokeAllSessions(
                tenant: tenant, actor: .administrator, userID: member.id.rawValue, client: Fixture.client)
        }
    }

    func testValidateRacingSignOutDoesNotCacheTheRevokedSession() async throws {
        try await racingLoad { s, accounts, tenant, _, token in
            try await accounts.signIn.signOut(tenant: tenant, token: token)
        }
    }

    func testValidateRacingDisableDoesNotCacheTheRevokedSession() async throws {
        try await racingLoad { s, accounts, tenant, member, _ in
            _ = try await accounts.users.setUserEnabled(
                tenant: tenant, actor: .administrator, id: member.id.rawValue, enabled: false)
        }
    }

    private func racingLoad(
        file: StaticString = #filePath, line: UInt = #line,
        _ revoke: @Sendable (SessionEnv, AccountService, Tenant, User, String) async throws -> Void
    ) async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        let member = try await env.makeUser(tenant, email: "member@acme.test")
        let accounts = env.accounts
        // The tenant is resolved from the directory, so the held read is
        // the session load itself.
        _ = try await accounts.tenant(reference: tenant.slug)
        let token = try await env.signIn(tenant, "member@acme.test").token

        env.store.holdNextRead()
        let inFlight = Task { await sessionRaceAttempt(accounts, tenant.slug, token, cachedFirst: false) }
        guard await env.store.waitUntilHoldingRead() else {
            env.store.releaseRead()
            return XCTFail("the validate never reached the store", file: file, line: line)
        }
        try await revoke(env, accounts, tenant, member, token)
        env.store.releaseRead()
        // It started before the revocation returned: either answer is fine.
        let outcome = await inFlight.value
        if case .failed(let error) = outcome { XCTFail("validate failed: \(error)", file: file, line: line) }

        await assertSessionRejected(accounts, tenant.slug, token, "session revoked during a load", file: file, line: line)
    }

    // MARK: Invalidation after the write, on every path

    /// A Validate that runs while the revoking write is still committing
    /// (it started before the revocation returned, so it may succeed) must
    /// not leave the session cached: the invalidation has to come AFTER the
    /// write, not before it.
    func testValidateDuringTheRevokingWriteIsNotCachedAfterwards() async throws {
        let paths = [
            "signOut", "revokeSession", "revokeOtherSessions", "revokeAllSessions", "changePassword", "resetPassword",
            "setUserEnabled", "sessionCap",
        ]
        for path in paths {
            let env = try SessionEnv()
            var (tenant, _) = try await env.makeTenant()
            let member = try await env.makeUser(tenant, email: "member@acme.test")
            let accounts = env.accounts
            let ref = tenant.slug
            let victim = try await env.signIn(tenant, "member@acme.test")
            env.clock.advance(seconds: 1)
            let keeper = try await env.signIn(tenant, "member@acme.test", client: Fixture.otherClient)
            env.clock.advance(seconds: 1)
            var resetToken = ""
            if path == "resetPassword" {
                try await accounts.passwords.requestPasswordReset(tenant: tenant, email: "member@acme.test", client: Fixture.client)
                resetToken = try XCTUnwrap(try env.world.lastResetToken(email: "member@acme.test"))
            }
            if path == "sessionCap" { tenant = try await env.setPolicy(tenant) { $0.maxSessionsPerUser = 2 } }
            _ = try await accounts.tenant(reference: ref)
            let capped = tenant
            let token = resetToken

            env.store.holdNextWrite()
            let revoking = Task {
                switch path {
                case "signOut":
                    try await accounts.signIn.signOut(tenant: capped, token: victim.token)
                case "revokeSession":
                    try await accounts.sessions.revokeSession(
                        tenant: capped, token: keeper.token, sessionID: victim.session.id.rawValue, client: Fixture.client)
                case "revokeOtherSessions":
                    _ = try await accounts.sessions.revokeOtherSessions(tenant: capped, token: keeper.token, client: Fixture.client)
                case "revokeAllSessions":
                    _ = try await accounts.sessions.revokeAllSessions(
                        tenant: capped, actor: .administrator, userID: member.id.rawValue, client: Fixture.client)
                case "changePassword":
                    _ = try await accounts.passwords.changePassword(
                        tenant: capped, token: keeper.token, currentPassword: Fixture.memberPassword,
                        newPassword: Fixture.newPassword, revokeOtherSessions: true, client: Fixture.client)
                case "resetPassword":
                    _ = try await accounts.passwords.resetPassword(tenant: capped, token: token, newPassword: Fixture.newPassword)
                case "setUserEnabled":
                    _ = try await accounts.users.setUserEnabled(
                        tenant: capped, actor: .administrator, id: member.id.rawValue, enabled: false)
                default:
                    _ = try await accounts.signIn.signIn(
                        tenant: capped, email: "member@acme.test", password: Fixture.memberPassword,
                        client: Fixture.client)
                }
            }
            guard await env.store.waitUntilHoldingWrite() else {
                env.store.releaseWrite()
                XCTFail("\(path): the revoking write never started")
                continue
            }
            // The write has not committed: this Validate loads a live session.
            let during = await sessionRaceAttempt(accounts, ref, victim.token, cachedFirst: false)
            XCTAssertEqual(during, .accepted, "\(path): validate during the write")
            env.store.releaseWrite()
            try await revoking.value
            await assertSessionRejected(accounts, ref, victim.token, "\(path): validated during the revoking write")
        }
    }

    // MARK: Many validators against one revocation

    /// 8 tasks validate one token in a loop while another revokes it. Any
    /// Validate that STARTED after the revoking call returned must refuse.
    func testNoValidateStartedAfterTheRevocationReturnedSucceeds() async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        let member = try await env.makeUser(tenant, email: "member@acme.test")
        let accounts = env.accounts
        let ref = tenant.slug
        var currentKeeper = try await env.signIn(tenant, "member@acme.test", client: Fixture.otherClient).token
        let rounds = 300

        var lateAccepted: [String] = []
        var failures: [String] = []
        var before = 0
        var after = 0
        for round in 0..<rounds {
            let victim = try await env.signIn(tenant, "member@acme.test")
            // Cached before the race starts (odd rounds: not cached, so the
            // validators race through the store path instead).
            if round % 2 == 0 { _ = try await accounts.validate(tenantReference: ref, token: victim.token) }
            let race = SessionRaceState()
            let victimToken = victim.token
            let victimID = victim.session.id.rawValue
            let keeperToken = currentKeeper
            let memberID = member.id.rawValue
            let path = round % 4

            let samples = try await withThrowingTaskGroup(of: [(Bool, SessionRaceOutcome)].self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        var samples: [(Bool, SessionRaceOutcome)] = []
                        var afterRevoke = 0
                        while afterRevoke < 3 {
                            let startedAfter = race.revoked.load(ordering: .acquiring)
                            let outcome = await sessionRaceAttempt(
                                accounts, ref, victimToken, cachedFirst: worker % 2 == 1)
                            race.calls.add(1, ordering: .relaxed)
                            samples.append((startedAfter, outcome))
                            if startedAfter { afterRevoke += 1 }
                            await Task.yield()
                        }
                        return samples
                    }
                }
                group.addTask {
                    // Let the validators get going first.
                    while race.calls.load(ordering: .relaxed) < 8 { await Task.yield() }
                    defer { race.revoked.store(true, ordering: .releasing) }
                    switch path {
                    case 0:
                        try await accounts.signIn.signOut(tenant: tenant, token: victimToken)
                    case 1:
                        try await accounts.sessions.revokeSession(
                            tenant: tenant, token: keeperToken, sessionID: victimID, client: Fixture.client)
                    case 2:
                        _ = try await accounts.sessions.revokeOtherSessions(
                            tenant: tenant, token: keeperToken, client: Fixture.client)
                    default:
                        // Revokes the keeper too; it is signed in again below.
                        _ = try await accounts.sessions.revokeAllSessions(
                            tenant: tenant, actor: .administrator, userID: memberID, client: Fixture.client)
                    }
                    return []
                }
                var all: [(Bool, SessionRaceOutcome)] = []
                for try await samples in group { all += samples }
                return all
            }
            for (startedAfter, outcome) in samples {
                if startedAfter { after += 1 } else { before += 1 }
                switch outcome {
                case .accepted where startedAfter: lateAccepted.append("round \(round) path \(path)")
                case .failed(let error): failures.append("round \(round): \(error)")
                default: break
                }
            }
            await assertSessionRejected(accounts, ref, victimToken, "round \(round) after the race")
            if path == 3 {
                // The keeper went with revokeAllSessions: sign it in again.
                currentKeeper = try await env.signIn(tenant, "member@acme.test", client: Fixture.otherClient).token
            } else {
                await assertSessionValid(accounts, ref, keeperToken, "keeper, round \(round)")
            }
        }
        XCTAssertEqual(lateAccepted, [], "Validate accepted a token after its revocation returned")
        XCTAssertEqual(failures, [], "unexpected errors")
        XCTAssertGreaterThanOrEqual(after, rounds * 8 * 3)
        XCTAssertGreaterThan(before, 0, "no validate ran before a revocation: the race was not exercised")
    }
}
