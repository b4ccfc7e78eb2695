import XCTest

@testable import MoatCore

/// The cache's bound, its answers for other tenants and expired entries,
/// and tenant policy changes seen by the next Validate.
final class SessionCacheTests: XCTestCase {
    // MARK: Bound

    func testTheCacheStaysWithinItsCapacityAndEvictedSessionsReload() async throws {
        let env = try SessionEnv(cacheCapacity: 10)
        let (tenant, _) = try await env.makeTenant()
        let accounts = env.accounts
        let ref = tenant.slug
        var sessions: [SignInResult] = []
        for user in 0..<5 {
            let email = "user\(user)@acme.test"
            try await env.makeUser(tenant, email: email)
            for _ in 0..<10 { sessions.append(try await env.signIn(tenant, email)) }
        }
        XCTAssertEqual(sessions.count, 50)

        for (index, signedIn) in sessions.enumerated() {
            await assertSessionValid(accounts, ref, signedIn.token, session: signedIn.session.id, "session \(index)")
            XCTAssertLessThanOrEqual(accounts.sessionCache.statistics.entries, 10, "after session \(index)")
        }
        XCTAssertEqual(accounts.sessionCache.statistics.entries, 10)
        // 50 sessions through 10 slots: every one past the tenth evicted one.
        XCTAssertEqual(accounts.sessionCache.evictions, 40)

        // All still validate (most reloaded from the store), each the right one.
        let missesBefore = accounts.sessionCache.statistics.misses
        for (index, signedIn) in sessions.enumerated() {
            await assertSessionValid(accounts, ref, signedIn.token, session: signedIn.session.id, "again \(index)")
        }
        XCTAssertLessThanOrEqual(accounts.sessionCache.statistics.entries, 10)
        XCTAssertGreaterThanOrEqual(accounts.sessionCache.statistics.misses - missesBefore, 40)

        // From the cache alone: at most 10 answers, none of them a refusal.
        var cachedHits = 0
        for signedIn in sessions {
            switch accounts.validateCached(tenantReference: ref, token: signedIn.token) {
            case .success(let pair)?:
                cachedHits += 1
                XCTAssertEqual(pair.0.session.id, signedIn.session.id)
            case .failure(let error)?: XCTFail("validateCached refused a live session: \(error)")
            case nil: break
            }
        }
        XCTAssertLessThanOrEqual(cachedHits, 10)
        XCTAssertGreaterThan(cachedHits, 0)

        // Evictions do not break revocation: user0 signed out everywhere.
        let user0 = sessions[0].user.id
        _ = try await accounts.sessions.revokeAllSessions(
            tenant: tenant, actor: .administrator, userID: user0.rawValue, client: Fixture.client)
        for signedIn in sessions {
            if signedIn.user.id == user0 {
                await assertSessionRejected(accounts, ref, signedIn.token, "user0's session")
            } else {
                await assertSessionValid(accounts, ref, signedIn.token, session: signedIn.session.id)
            }
        }
        XCTAssertLessThanOrEqual(accounts.sessionCache.statistics.entries, 10)
    }

    func testACacheOfCapacityZeroCachesNothingAndStillValidates() async throws {
        let env = try SessionEnv(cacheCapacity: 0)
        let (tenant, _) = try await env.makeTenant()
        let signedIn = try await env.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        for _ in 0..<3 {
            await assertSessionValid(env.accounts, tenant.slug, signedIn.token, session: signedIn.session.id)
            XCTAssertNil(env.accounts.validateCached(tenantReference: tenant.slug, token: signedIn.token).map { _ in 1 })
        }
        XCTAssertEqual(env.accounts.sessionCache.statistics.entries, 0)
        try await env.accounts.signIn.signOut(tenant: tenant, token: signedIn.token)
        await assertSessionRejected(env.accounts, tenant.slug, signedIn.token, "signed out")
    }

    // MARK: Answers of the cache itself

    func testTheCacheRefusesAnotherTenantAndExpiredEntries() {
        let cache = SessionCache()
        let (validated, hash) = sessionFixture(idleSeconds: 600, absoluteSeconds: 3600)
        let tenant = validated.session.tenantID
        let start = validated.session.createdAt
        guard case .miss(let epoch) = cache.validate(tenant: tenant, tokenHash: hash, now: start) else {
            return XCTFail("an empty cache answered")
        }
        cache.insert(validated, loadedAt: epoch)
        XCTAssertEqual(cache.validate(tenant: TenantID.random(), tokenHash: hash, now: start), .invalid)
        guard case .hit = cache.validate(tenant: tenant, tokenHash: hash, now: start) else {
            return XCTFail("the other tenant's lookup spoiled the entry")
        }
        // Idle: 600 s after the last use.
        XCTAssertEqual(cache.validate(tenant: tenant, tokenHash: hash, now: start.adding(seconds: 600)), .invalid)
        XCTAssertEqual(cache.statistics.entries, 0, "an expired entry stayed")
    }

    func testAHashSharingTheKeyPrefixIsNotAHit() {
        let cache = SessionCache()
        let (validated, hash) = sessionFixture()
        let tenant = validated.session.tenantID
        let now = validated.session.createdAt
        guard case .miss(let epoch) = cache.validate(tenant: tenant, tokenHash: hash, now: now) else {
            return XCTFail("an empty cache answered")
        }
        cache.insert(validated, loadedAt: epoch)
        var twin = hash
        twin[31] ^= 0xFF  // same first 16 bytes, another token
        guard case .miss = cache.validate(tenant: tenant, tokenHash: twin, now: now) else {
            return XCTFail("a different token hash answered from the cache")
        }
    }

    // MARK: Tenant policy

    func testAPolicyChangeIsSeenByTheNextValidate() async throws {
        let env = try SessionEnv()
        let (tenant, _) = try await env.makeTenant()
        let accounts = env.accounts
        let signedIn = try await env.signIn(tenant, Fixture.ownerEmail, Fixture.ownerPassword)
        for reference in [tenant.slug, tenant.id.rawValue] {
            let (_, resolved) = try await accounts.validate(tenantReference: reference, token: signedIn.token)
            XCTAssertFalse(resolved.policy.requireTwoFactor)
            guard case .success(let pair)? = accounts.validateCached(tenantReference: reference, token: signedIn.token)
            else { return XCTFail("not cached") }
            XCTAssertFalse(pair.1.policy.requireTwoFactor)
        }

        let updated = try await accounts.tenants.updatePolicy(tenant: tenant.slug) { $0.requireTwoFactor = true }
        XCTAssertTrue(updated.requireTwoFactor)

        for reference in [tenant.slug, tenant.id.rawValue] {
            // The cached path may send us to the store, never answer with the old policy.
            if case .success(let pair)? = accounts.validateCached(tenantReference: reference, token: signedIn.token) {
                XCTAssertTrue(pair.1.policy.requireTwoFactor, "validateCached answered with the old policy (\(reference))")
            }
            let (validated, resolved) = try await accounts.validate(tenantReference: reference, token: signedIn.token)
            XCTAssertTrue(resolved.policy.requireTwoFactor, "validate answered with the old policy (\(reference))")
            XCTAssertEqual(validated.session.id, signedIn.session.id)
            guard case .success(let pair)? = accounts.validateCached(tenantReference: reference, token: signedIn.token)
            else { return XCTFail("not cached after validate") }
            XCTAssertTrue(pair.1.policy.requireTwoFactor)
        }

        // And back.
        _ = try await accounts.tenants.updatePolicy(tenant: tenant.id.rawValue) { $0.requireTwoFactor = false }
        let (_, resolved) = try await accounts.validate(tenantReference: tenant.slug, token: signedIn.token)
        XCTAssertFalse(resolved.policy.requireTwoFactor)
    }
}
