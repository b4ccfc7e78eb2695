import Foundation
import Synchronization
import XCTest

@testable import MoatCore

// Shared helpers of the Session*Tests files (this file holds no tests).
// Everything here is prefixed `Session`/`session` so it cannot collide with
// other test files' helpers.

/// The error a ``SessionControlledStore`` throws from a write it was told
/// to fail.
struct SessionStoreFailure: Error, Equatable {}

/// The memory store behind a wrapper that can fail the next writes (a full
/// disk, a lost connection) or hold the next read after it ran (a slow
/// reader racing with a writer).
final class SessionControlledStore: AccountStore {
    let inner: MemoryAccountStore

    private struct Control {
        var failingWrites = 0
        var failedWrites = 0
        var holdNextRead = false
        var readHeld = TestLatch()
        var readReleased = TestLatch()
        var holdNextWrite = false
        var writeHeld = TestLatch()
        var writeReleased = TestLatch()
    }

    private let control = Mutex(Control())

    init(inner: MemoryAccountStore) { self.inner = inner }

    var validityMarks: ValidityMarkRelay { inner.validityMarks }

    /// The next `count` writes throw ``SessionStoreFailure`` and change nothing.
    func failNextWrites(_ count: Int) { control.withLock { $0.failingWrites = count } }

    /// How many writes failed on purpose so far.
    var failedWrites: Int { control.withLock { $0.failedWrites } }

    /// The next read runs its body, then waits for ``releaseRead()``
    /// before returning its (by then stale) answer.
    func holdNextRead() {
        control.withLock {
            $0.holdNextRead = true
            $0.readHeld = TestLatch()
            $0.readReleased = TestLatch()
        }
    }

    func releaseRead() { control.withLock { $0.readReleased }.open() }

    /// Waits (up to 10 s) until a held read is waiting.
    func waitUntilHoldingRead() async -> Bool {
        await control.withLock { $0.readHeld }.wait(upTo: 10)
    }

    /// The next write waits for ``releaseWrite()`` before its body runs
    /// (a slow commit racing with readers).
    func holdNextWrite() {
        control.withLock {
            $0.holdNextWrite = true
            $0.writeHeld = TestLatch()
            $0.writeReleased = TestLatch()
        }
    }

    func releaseWrite() { control.withLock { $0.writeReleased }.open() }

    /// Waits (up to 10 s) until a held write is waiting.
    func waitUntilHoldingWrite() async -> Bool {
        await control.withLock { $0.writeHeld }.wait(upTo: 10)
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreReader) throws -> T) async throws -> T {
        let hold = control.withLock { (control: inout Control) -> (held: TestLatch, released: TestLatch)? in
            guard control.holdNextRead else { return nil }
            control.holdNextRead = false
            return (control.readHeld, control.readReleased)
        }
        let result = try await inner.read(body)
        if let hold {
            hold.held.open()
            _ = await hold.released.wait(upTo: 10)
        }
        return result
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreWriter) throws -> T) async throws -> T {
        let fail = control.withLock { (control: inout Control) -> Bool in
            guard control.failingWrites > 0 else { return false }
            control.failingWrites -= 1
            control.failedWrites += 1
            return true
        }
        if fail { throw SessionStoreFailure() }
        let hold = control.withLock { (control: inout Control) -> (held: TestLatch, released: TestLatch)? in
            guard control.holdNextWrite else { return nil }
            control.holdNextWrite = false
            return (control.writeHeld, control.writeReleased)
        }
        if let hold {
            hold.held.open()
            _ = await hold.released.wait(upTo: 10)
        }
        return try await inner.write(body)
    }
}

/// A ``World`` (memory store, manual clock, cheap Argon2) with the service
/// under test on a ``SessionControlledStore`` and a cache of a chosen size.
struct SessionEnv: Sendable {
    let world: World
    let store: SessionControlledStore
    let accounts: AccountService

    var clock: ManualClock { world.clock }

    init(cacheCapacity: Int = 100_000) throws {
        world = try World()
        store = SessionControlledStore(inner: world.store)
        accounts = AccountService(
            store: store, hasher: world.hasher, clock: world.clock,
            sessionCache: SessionCache(capacity: cacheCapacity))
    }

    /// Another service on the same store with an empty cache and no pending
    /// last-active times: what a restarted daemon (or another host) sees.
    func freshService() -> AccountService {
        AccountService(store: world.store, hasher: world.hasher, clock: world.clock)
    }

    @discardableResult
    func makeTenant(slug: String = "acme", ownerEmail: String = Fixture.ownerEmail) async throws -> (Tenant, User) {
        try await accounts.tenants.createTenant(
            slug: slug, name: slug.capitalized, ownerEmail: ownerEmail, ownerPassword: Fixture.ownerPassword)
    }

    @discardableResult
    func makeUser(
        _ tenant: Tenant, email: String, password: String = Fixture.memberPassword, role: TenantRole = .member
    ) async throws -> User {
        try await accounts.users.createUser(tenant: tenant, actor: .administrator, email: email, password: password, role: role)
    }

    func signIn(
        _ tenant: Tenant, _ email: String, _ password: String = Fixture.memberPassword,
        client: ClientDetails = Fixture.client
    ) async throws -> SignInResult {
        try await accounts.signIn.signIn(tenant: tenant, email: email, password: password, client: client)
    }

    func actor(_ tenant: Tenant, token: String) async throws -> Principal {
        try await accounts.actor(tenant: tenant.id, token: token, callerIsAdministrator: false)
    }

    /// Applies a policy change; returns the tenant as it is now.
    func setPolicy(_ tenant: Tenant, _ change: @escaping @Sendable (inout TenantPolicy) -> Void) async throws -> Tenant {
        _ = try await accounts.tenants.updatePolicy(tenant: tenant.id.rawValue, change: change)
        return try await accounts.tenant(reference: tenant.id.rawValue)
    }

    /// The stored row of a session, revoked or not.
    func storedSession(_ tenant: Tenant, _ id: SessionID) async throws -> Session? {
        try await world.store.read { try $0.session(tenant: tenant.id, id: id) }
    }
}

// MARK: Assertions

/// `validate` must accept the token (and, if given, for that session).
@discardableResult
func assertSessionValid(
    _ accounts: AccountService, _ tenant: String, _ token: String, session expected: SessionID? = nil,
    _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) async -> ValidatedSession? {
    do {
        let (validated, resolved) = try await accounts.validate(tenantReference: tenant, token: token)
        if let expected { XCTAssertEqual(validated.session.id, expected, "session of \(message)", file: file, line: line) }
        XCTAssertEqual(validated.session.tenantID, resolved.id, "tenant of \(message)", file: file, line: line)
        return validated
    } catch {
        XCTFail("validate refused \(message): \(error)", file: file, line: line)
        return nil
    }
}

/// `validateCached` must answer success from the cache (not nil).
@discardableResult
func assertSessionCached(
    _ accounts: AccountService, _ tenant: String, _ token: String, session expected: SessionID? = nil,
    _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) -> ValidatedSession? {
    switch accounts.validateCached(tenantReference: tenant, token: token) {
    case nil:
        XCTFail("validateCached has no answer for \(message) (not cached)", file: file, line: line)
        return nil
    case .failure(let error)?:
        XCTFail("validateCached refused \(message): \(error)", file: file, line: line)
        return nil
    case .success(let pair)?:
        if let expected { XCTAssertEqual(pair.0.session.id, expected, "session of \(message)", file: file, line: line) }
        return pair.0
    }
}

/// `validateCached` must not accept the token: nil (ask the store) or
/// UNAUTHENTICATED `SESSION_INVALID`.
func assertSessionNotAcceptedFromCache(
    _ accounts: AccountService, _ tenant: String, _ token: String, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    switch accounts.validateCached(tenantReference: tenant, token: token) {
    case nil:
        break
    case .success(let pair)?:
        XCTFail(
            "validateCached ACCEPTED \(message) (session \(pair.0.session.id), stale cache)", file: file, line: line)
    case .failure(let error)?:
        XCTAssertEqual(error.kind, .unauthenticated, "kind from validateCached, \(message)", file: file, line: line)
        XCTAssertEqual(error.reason, "SESSION_INVALID", "reason from validateCached, \(message)", file: file, line: line)
    }
}

/// Neither `validateCached` nor `validate` may accept the token; `validate`
/// answers UNAUTHENTICATED `SESSION_INVALID`.
func assertSessionRejected(
    _ accounts: AccountService, _ tenant: String, _ token: String, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) async {
    assertSessionNotAcceptedFromCache(accounts, tenant, token, message, file: file, line: line)
    do {
        let (validated, _) = try await accounts.validate(tenantReference: tenant, token: token)
        XCTFail("validate ACCEPTED \(message) (session \(validated.session.id))", file: file, line: line)
    } catch let error as DomainError {
        XCTAssertEqual(error.kind, .unauthenticated, "kind from validate, \(message): \(error)", file: file, line: line)
        XCTAssertEqual(error.reason, "SESSION_INVALID", "reason from validate, \(message): \(error)", file: file, line: line)
    } catch {
        XCTFail("validate of \(message) threw \(error), not SESSION_INVALID", file: file, line: line)
    }
    // A refused load must not have left anything in the cache.
    assertSessionNotAcceptedFromCache(accounts, tenant, token, "\(message) (after validate)", file: file, line: line)
}

/// A cached session for unit tests of ``SessionCache``.
func sessionFixture(
    tenant: TenantID = .random(), user: UserID = .random(), at now: Timestamp = Timestamp(seconds: 1_750_000_000),
    idleSeconds: Int64 = 3600, absoluteSeconds: Int64 = 86400
) -> (validated: ValidatedSession, tokenHash: [UInt8]) {
    let hash = OpaqueToken.hash(OpaqueToken.make())
    let session = Session(
        id: .random(), tenantID: tenant, userID: user, tokenHash: hash, client: Fixture.client, createdAt: now,
        lastActiveAt: now, absoluteExpiresAt: now.adding(seconds: absoluteSeconds), idleTimeoutSeconds: idleSeconds,
        secondFactorSatisfied: false)
    return (ValidatedSession(session: session, email: "u@acme.test", role: .member, twoFactorEnabled: false), hash)
}
