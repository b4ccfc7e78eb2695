import Foundation
import Synchronization
import XCTest

@testable import MoatCore

/// The error ``FlightStore`` throws from a held read told to fail.
struct FlightStoreFailure: Error, Equatable {}

/// The memory store counting its reads, able to hold the next read after
/// its body ran (and then fail it, or return its by then stale answer).
final class FlightStore: AccountStore {
    let inner: MemoryAccountStore

    private struct Control {
        var reads = 0
        var hold: (held: TestLatch, released: TestLatch, fail: Bool)?
    }

    private let control = Mutex(Control())

    init(inner: MemoryAccountStore) { self.inner = inner }

    var validityMarks: ValidityMarkRelay { inner.validityMarks }

    /// Reads started so far.
    var reads: Int { control.withLock { $0.reads } }

    /// The next read runs its body, then waits for the returned latch to
    /// open, then returns its answer (or throws ``FlightStoreFailure``).
    /// Returns the latch opened once the read is waiting.
    func holdNextRead(failing: Bool = false) -> (held: TestLatch, release: TestLatch) {
        let hold = (held: TestLatch(), released: TestLatch(), fail: failing)
        control.withLock { $0.hold = hold }
        return (hold.held, hold.released)
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreReader) throws -> T) async throws -> T {
        let hold = control.withLock { control -> (held: TestLatch, released: TestLatch, fail: Bool)? in
            control.reads += 1
            defer { control.hold = nil }
            return control.hold
        }
        let result = try await inner.read(body)
        if let hold {
            hold.held.open()
            _ = await hold.released.wait(upTo: 10)
            if hold.fail { throw FlightStoreFailure() }
        }
        return result
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreWriter) throws -> T) async throws -> T {
        try await inner.write(body)
    }
}

/// The Validate miss path's single-flight: concurrent misses of one token
/// do one store read, and a revocation while it is in flight is never
/// answered as valid to a call that started after the revoke returned.
final class SessionSingleFlightTests: XCTestCase {
    private struct Env {
        let world: World
        let store: FlightStore
        let accounts: AccountService
        let tenant: Tenant
        let member: User
        let token: String

        init(cacheCapacity: Int = 100_000) async throws {
            let world = try World()
            let store = FlightStore(inner: world.store)
            let accounts = AccountService(
                store: store, hasher: world.hasher, clock: world.clock, sessionCache: SessionCache(capacity: cacheCapacity))
            let (tenant, _) = try await accounts.tenants.createTenant(
                slug: "acme", name: "Acme", ownerEmail: Fixture.ownerEmail, ownerPassword: Fixture.ownerPassword)
            let member = try await accounts.users.createUser(
                tenant: tenant, actor: .administrator, email: "member@acme.test", password: Fixture.memberPassword,
                role: .member)
            // Resolved into the directory: the reads counted below are the session loads.
            _ = try await accounts.tenant(reference: tenant.slug)
            let signIn = try await accounts.signIn.signIn(
                tenant: tenant, email: "member@acme.test", password: Fixture.memberPassword, client: Fixture.client)
            // A cold cache: the sign-in does not fill it, but make sure.
            accounts.sessionCache.invalidateAll()
            self.world = world
            self.store = store
            self.accounts = accounts
            self.tenant = tenant
            self.member = member
            self.token = signIn.token
        }
    }

    /// Waits (up to 10 s) until `count` misses joined a read in flight.
    private func waitForJoined(_ accounts: AccountService, _ count: UInt64) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while accounts.authority.loadStatistics.joined < count {
            if ContinuousClock.now > deadline { return false }
            // bounded poll: the misses join on their own tasks, and the
            // authority's counter is the only outside sign that they have.
            try? await Task.sleep(for: .milliseconds(1))
        }
        return true
    }

    private func validations(_ env: Env, _ count: Int) -> [Task<SessionRaceOutcome, Never>] {
        (0..<count).map { _ in
            Task { await sessionRaceAttempt(env.accounts, env.tenant.slug, env.token, cachedFirst: false) }
        }
    }

    /// 16 concurrent misses of one token: one store read, 16 answers, and
    /// the cache is filled by it.
    func testConcurrentMissesOfOneTokenDoOneStoreRead() async throws {
        let env = try await Env()
        let readsBefore = env.store.reads
        let hold = env.store.holdNextRead()
        let leader = validations(env, 1)
        guard await hold.held.wait(upTo: 10) else { return XCTFail("the first miss never reached the store") }
        let followers = validations(env, 15)
        guard await waitForJoined(env.accounts, 15) else {
            hold.release.open()
            return XCTFail("only \(env.accounts.authority.loadStatistics.joined) of 15 misses joined the read")
        }
        hold.release.open()
        for task in leader + followers {
            let outcome = await task.value
            XCTAssertEqual(outcome, .accepted)
        }
        XCTAssertEqual(env.store.reads - readsBefore, 1, "store reads for 16 concurrent misses of one token")
        XCTAssertEqual(env.accounts.authority.loadStatistics.loads, 1)
        // The read filled the cache: the next Validate does not touch the store.
        assertSessionCached(env.accounts, env.tenant.slug, env.token)
        await assertSessionValid(env.accounts, env.tenant.slug, env.token)
        XCTAssertEqual(env.store.reads - readsBefore, 1)
    }

    /// The read's error reaches the leader and every follower, and the
    /// failed flight is gone: the next miss reads again and succeeds.
    func testTheLeadersErrorReachesEveryFollower() async throws {
        let env = try await Env()
        let hold = env.store.holdNextRead(failing: true)
        let leader = validations(env, 1)
        guard await hold.held.wait(upTo: 10) else { return XCTFail("the first miss never reached the store") }
        let followers = validations(env, 7)
        guard await waitForJoined(env.accounts, 7) else {
            hold.release.open()
            return XCTFail("the misses did not join the read")
        }
        hold.release.open()
        for task in leader + followers {
            let outcome = await task.value
            guard case .failed(let description) = outcome else {
                XCTFail("a waiter answered \(outcome), not the store's error")
                continue
            }
            XCTAssertTrue(description.contains("FlightStoreFailure"), description)
        }
        XCTAssertEqual(env.accounts.sessionCache.statistics.entries, 0, "a failed read cached something")
        let before = env.store.reads
        await assertSessionValid(env.accounts, env.tenant.slug, env.token, "after the failed read")
        XCTAssertEqual(env.store.reads - before, 1, "the failed flight was joined after it ended")
    }

    /// A revocation while the read is in flight: calls that joined before
    /// it may get either answer, but a Validate that starts after the
    /// revoking call returned must not join the stale read (it reads
    /// again, and is refused, while the stale read is still held), and the
    /// stale answer is not cached.
    func testARevokeDuringTheReadIsNotAnsweredToLaterCalls() async throws {
        for revoke in ["signOut", "disableUser", "revokeAll"] {
            let env = try await Env()
            let hold = env.store.holdNextRead()
            let early = validations(env, 1)
            guard await hold.held.wait(upTo: 10) else { return XCTFail("\(revoke): the miss never reached the store") }
            let joined = validations(env, 3)
            guard await waitForJoined(env.accounts, 3) else {
                hold.release.open()
                return XCTFail("\(revoke): the misses did not join the read")
            }
            switch revoke {
            case "signOut":
                try await env.accounts.signIn.signOut(tenant: env.tenant, token: env.token)
            case "disableUser":
                _ = try await env.accounts.users.setUserEnabled(
                    tenant: env.tenant, actor: .administrator, id: env.member.id.rawValue, enabled: false)
            default:
                _ = try await env.accounts.sessions.revokeAllSessions(
                    tenant: env.tenant, actor: .administrator, userID: env.member.id.rawValue, client: Fixture.client)
            }
            // The revoke returned; the stale read is still held. A Validate
            // now must answer without waiting for it, and refuse.
            let after = await sessionRaceAttempt(env.accounts, env.tenant.slug, env.token, cachedFirst: true)
            XCTAssertEqual(after, .rejected, "\(revoke): a Validate started after the revoke returned")
            XCTAssertFalse(hold.release.isOpen, "\(revoke): the later call waited for the stale read")
            XCTAssertEqual(env.accounts.authority.loadStatistics.loads, 2, "\(revoke): the later call read again")
            hold.release.open()
            for task in early + joined {
                let outcome = await task.value
                if case .failed(let error) = outcome { XCTFail("\(revoke): validate failed: \(error)") }
            }
            // The stale load was not cached: still refused, from the store.
            await assertSessionRejected(env.accounts, env.tenant.slug, env.token, "\(revoke): after the stale read")
        }
    }

    /// Misses one after another each read (a flight ends with its read),
    /// and a cache of capacity 0 caches nothing: every Validate is a store
    /// read (what `sessions.cache_entries = 0` measures).
    func testCapacityZeroReadsEveryTime() async throws {
        let env = try await Env(cacheCapacity: 0)
        let before = env.store.reads
        for _ in 0..<5 {
            await assertSessionValid(env.accounts, env.tenant.slug, env.token)
            XCTAssertNil(env.accounts.validateCached(tenantReference: env.tenant.slug, token: env.token))
        }
        XCTAssertEqual(env.store.reads - before, 5)
        XCTAssertEqual(env.accounts.sessionCache.statistics.entries, 0)
        XCTAssertEqual(env.accounts.authority.loadStatistics.joined, 0)
    }

    /// The completion form (the transport's miss path) answers like the
    /// async one: valid, then refused after a revoke, and an unknown token.
    func testCompletionFormAnswersLikeTheAsyncForm() async throws {
        let env = try await Env(cacheCapacity: 0)
        func completed(_ token: String) async -> Result<SessionID, any Error> {
            await withCheckedContinuation { continuation in
                env.accounts.validate(tenantReference: env.tenant.slug, token: token) { result in
                    continuation.resume(returning: result.map { $0.0.session.id })
                }
            }
        }
        let valid = try await completed(env.token).get()
        let expected = try await env.accounts.validate(tenantReference: env.tenant.slug, token: env.token).0.session.id
        XCTAssertEqual(valid, expected)
        let unknown = await completed("not-a-token-of-anyone-at-all-xxxxxxxxxxxxxx")
        XCTAssertEqual((unknown.failureError as? DomainError)?.reason, "SESSION_INVALID")
        let noTenant = await withCheckedContinuation { continuation in
            env.accounts.validate(tenantReference: "nobody", token: env.token) { continuation.resume(returning: $0.map { _ in 0 }) }
        }
        XCTAssertEqual((noTenant.failureError as? DomainError)?.reason, DomainError.tenantNotFound.reason)
        try await env.accounts.signIn.signOut(tenant: env.tenant, token: env.token)
        let revoked = await completed(env.token)
        XCTAssertEqual((revoked.failureError as? DomainError)?.reason, "SESSION_INVALID")
    }
}

extension Result {
    fileprivate var failureError: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
