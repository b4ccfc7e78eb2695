import Foundation
import MoatCrypto
import Synchronization
import XCTest

@testable import MoatCore

// MARK: Clock, encoder, parameters

/// A wall clock that moves only when a test moves it.
final class ManualClock: WallClock {
    private let current: Mutex<Timestamp>

    init(start: Timestamp = Timestamp(seconds: 1_750_000_000)) {
        current = Mutex(start)
    }

    func now() -> Timestamp { current.withLock { $0 } }

    func advance(seconds: Int64) { current.withLock { $0 = $0.adding(seconds: seconds) } }

    func advance(milliseconds: Int64) {
        current.withLock { $0 = Timestamp(milliseconds: $0.milliseconds + milliseconds) }
    }
}

/// Outbox payloads as JSON of the `DomainEvent`, so tests read events back.
struct JSONEventEncoder: EventEncoder {
    func encode(_ event: DomainEvent) -> [UInt8] {
        // Plain value types: encoding cannot fail; an empty payload would
        // make `decode` fail loudly in the test that reads it.
        Array((try? JSONEncoder().encode(event)) ?? Data())
    }

    static func decode(_ record: EventRecord) throws -> DomainEvent {
        try JSONDecoder().decode(DomainEvent.self, from: Data(record.payload))
    }
}

extension Argon2Parameters {
    /// Cheap enough for hundreds of hashes per test run.
    static let cheap = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
}

// MARK: Fixtures

enum Fixture {
    static let ownerEmail = "owner@acme.test"
    static let ownerPassword = "owner-pass-7741-ok"
    static let adminPassword = "admin-pass-6613-ok"
    static let memberPassword = "member-pass-2209-ok"
    static let newPassword = "new-pass-5531-fresh"
    static let client = ClientDetails(
        userAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0", ip: "203.0.113.7",
        location: "Lisbon, PT", deviceName: "laptop")
    static let otherClient = ClientDetails(
        userAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        ip: "198.51.100.23")
}

/// Runs hashes inline, and refuses them with OVERLOADED while a test says
/// so: the domain's handling of a full hashing pool, tested without one.
final class ScriptedHashingExecutor: HashingExecutor {
    private let refusing = Mutex(false)
    private let ran = Mutex(0)

    /// Whether every job is refused from now on.
    func refuse(_ refuse: Bool) { refusing.withLock { $0 = refuse } }

    /// Jobs run so far (refused ones are not counted).
    var jobsRun: Int { ran.withLock { $0 } }

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        if refusing.withLock({ $0 }) { throw DomainError.hashingOverloaded }
        ran.withLock { $0 += 1 }
        return try body()
    }
}

/// Everything a domain test needs: a memory store, a manual clock, a
/// hasher (inline, see ``ScriptedHashingExecutor``) and the service on top.
final class World: Sendable {
    let clock: ManualClock
    let store: MemoryAccountStore
    let hashing: ScriptedHashingExecutor
    let hasher: PasswordHasher
    let accounts: AccountService

    init(
        parameters: Argon2Parameters = .cheap, configuration: AccountConfiguration = AccountConfiguration(),
        store: MemoryAccountStore? = nil, clock: ManualClock? = nil
    ) throws {
        var settings = HashingConfiguration()
        settings.parameters = parameters
        self.clock = clock ?? ManualClock()
        self.store = store ?? MemoryAccountStore(encoder: JSONEventEncoder())
        self.hashing = ScriptedHashingExecutor()
        self.hasher = try PasswordHasher(configuration: settings, executor: hashing)
        self.accounts = AccountService(
            store: self.store, hasher: hasher, clock: self.clock, configuration: configuration)
    }

    // MARK: Building state

    @discardableResult
    func makeTenant(
        slug: String = "acme", name: String = "Acme", ownerEmail: String = Fixture.ownerEmail,
        ownerPassword: String = Fixture.ownerPassword
    ) async throws -> (tenant: Tenant, owner: User) {
        let (tenant, owner) = try await accounts.tenants.createTenant(
            slug: slug, name: name, ownerEmail: ownerEmail, ownerPassword: ownerPassword)
        return (tenant, owner)
    }

    @discardableResult
    func makeUser(
        _ tenant: Tenant, email: String, password: String = Fixture.memberPassword, role: TenantRole = .member
    ) async throws -> User {
        try await accounts.users.createUser(tenant: tenant, actor: .administrator, email: email, password: password, role: role)
    }

    func signIn(
        _ tenant: Tenant, _ email: String, _ password: String, client: ClientDetails = Fixture.client
    ) async throws -> SignInResult {
        try await accounts.signIn.signIn(tenant: tenant, email: email, password: password, client: client)
    }

    /// The actor behind a session token.
    func actor(_ tenant: Tenant, token: String) async throws -> Principal {
        try await accounts.actor(tenant: tenant.id, token: token, callerIsAdministrator: false)
    }

    /// Applies a policy change and returns the tenant as stored now.
    func setPolicy(_ tenant: Tenant, _ change: @escaping @Sendable (inout TenantPolicy) -> Void) async throws -> Tenant {
        _ = try await accounts.tenants.updatePolicy(tenant: tenant.id.rawValue, change: change)
        return try await accounts.tenant(reference: tenant.id.rawValue)
    }

    // MARK: Reading state

    func storedUser(_ tenant: Tenant, _ id: UserID) async throws -> User? {
        try await store.read { try $0.user(tenant: tenant.id, id: id) }
    }

    /// Sessions not revoked and not expired at the clock's time.
    func liveSessions(_ tenant: Tenant, _ user: UserID) async throws -> [Session] {
        let now = clock.now()
        return try await store.read { try $0.sessions(tenant: tenant.id, user: user) }.filter { $0.isLive(at: now) }
    }

    func resetRecord(_ tenant: Tenant, token: String) async throws -> PasswordResetToken? {
        try await store.read { try $0.passwordReset(tenant: tenant.id, tokenHash: OpaqueToken.hash(token)) }
    }

    /// The user's security log, oldest first.
    func securityLog(_ tenant: Tenant, _ user: UserID) async throws -> [SecurityLogEntry] {
        try await store.read { try $0.securityLog(tenant: tenant.id, user: user, beforeID: nil, limit: 1000) }.reversed()
    }

    /// Outbox records with a sequence above `after`, decoded.
    func events(after sequence: Int64 = 0) throws -> [OutboxEvent] {
        try store.allEvents.filter { $0.sequence > sequence }.map {
            OutboxEvent(record: $0, event: try JSONEventEncoder.decode($0))
        }
    }

    var lastSequence: Int64 { store.allEvents.last?.sequence ?? 0 }

    /// The token of the newest `password_reset.requested` event for `email`.
    func lastResetToken(email: String) throws -> String? {
        for item in try events().reversed() {
            if case .passwordResetRequested(_, let to, let token, _, _, _, _) = item.event, to == email { return token }
        }
        return nil
    }

    /// Everything observable in the store, for "nothing changed" checks.
    func snapshot() async throws -> StoreSnapshot {
        let (tenants, users, sessions) = try await store.read { reader in
            let tenants = try reader.tenants(afterSlug: nil, limit: 100_000)
            var users: [User] = []
            var sessions: [Session] = []
            for tenant in tenants {
                let members = try reader.users(tenant: tenant.id, afterEmail: nil, limit: 100_000)
                users += members
                for user in members { sessions += try reader.sessions(tenant: tenant.id, user: user.id) }
            }
            return (tenants, users, sessions)
        }
        return StoreSnapshot(
            tenants: tenants.sorted { $0.id.rawValue < $1.id.rawValue },
            users: users.sorted { $0.id.rawValue < $1.id.rawValue },
            sessions: sessions.sorted { $0.id.rawValue < $1.id.rawValue }, events: store.allEvents,
            securityLog: store.allSecurityLog)
    }
}

/// Opened once; tasks await it instead of polling or sleeping.
final class TestLatch: Sendable {
    private let state = Mutex((open: false, waiters: [CheckedContinuation<Void, Never>]()))

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var isOpen: Bool { state.withLock { $0.open } }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let open = state.withLock { state -> Bool in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }

    /// Waits until opened (true) or, so a broken test fails instead of
    /// hanging the suite, until `seconds` pass (false).
    func wait(upTo seconds: TimeInterval) async -> Bool {
        let opened = XCTestExpectation(description: "latch opened")
        let waiting = Task {
            await wait()
            opened.fulfill()
        }
        let result = await XCTWaiter.fulfillment(of: [opened], timeout: seconds)
        if result != .completed { open() }  // ends the waiting task
        await waiting.value
        return result == .completed
    }
}

/// The memory store with a gate on writes: after `holdNextWrite()`, the
/// next write waits, before its body runs, until `releaseWrite()`.
final class HeldWriteStore: AccountStore {
    private struct Gates {
        var holdNext = false
        var holding = TestLatch()
        var release = TestLatch()
    }

    let inner: MemoryAccountStore
    private let gates = Mutex(Gates())

    init(inner: MemoryAccountStore) { self.inner = inner }

    var validityMarks: ValidityMarkRelay { inner.validityMarks }

    func holdNextWrite() { gates.withLock { $0 = Gates(holdNext: true) } }

    /// Waits until the held write is waiting (it has not run its body);
    /// fails the test after 10 s.
    func waitUntilHoldingWrite(file: StaticString = #filePath, line: UInt = #line) async {
        let holding = gates.withLock { $0.holding }
        let held = await holding.wait(upTo: 10)
        XCTAssertTrue(held, "the held write never started", file: file, line: line)
    }

    func releaseWrite() { gates.withLock { $0.release }.open() }

    func read<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreReader) throws -> T) async throws -> T {
        try await inner.read(body)
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any AccountStoreWriter) throws -> T) async throws -> T {
        let held = gates.withLock { gates -> Gates? in
            guard gates.holdNext else { return nil }
            gates.holdNext = false
            return gates
        }
        if let held {
            held.holding.open()
            _ = await held.release.wait(upTo: 10)
        }
        return try await inner.write(body)
    }
}

/// An outbox record and the event its payload holds.
struct OutboxEvent {
    var record: EventRecord
    var event: DomainEvent
}

/// The store's observable state.
struct StoreSnapshot: Equatable {
    var tenants: [Tenant]
    var users: [User]
    /// Sessions not revoked.
    var sessions: [Session]
    var events: [EventRecord]
    var securityLog: [SecurityLogEntry]
}

// MARK: Assertions

/// Runs `body`, which must throw exactly this `DomainError` kind and reason.
@discardableResult
func assertDomainError<T>(
    _ kind: DomainError.Kind, _ reason: String, file: StaticString = #filePath, line: UInt = #line,
    _ body: () async throws -> T
) async -> DomainError? {
    do {
        _ = try await body()
        XCTFail("expected \(kind) \(reason), but the call succeeded", file: file, line: line)
        return nil
    } catch let error as DomainError {
        XCTAssertEqual(error.kind, kind, "kind of \(error)", file: file, line: line)
        XCTAssertEqual(error.reason, reason, "reason of \(error)", file: file, line: line)
        return error
    } catch {
        XCTFail("expected DomainError \(kind) \(reason), got \(error)", file: file, line: line)
        return nil
    }
}

/// Asserts the store is the same as in `before`.
func assertUnchanged(
    _ world: World, since before: StoreSnapshot, _ message: String = "", file: StaticString = #filePath,
    line: UInt = #line
) async throws {
    let after = try await world.snapshot()
    XCTAssertEqual(after.tenants, before.tenants, "tenants changed \(message)", file: file, line: line)
    XCTAssertEqual(after.users, before.users, "users changed \(message)", file: file, line: line)
    XCTAssertEqual(after.sessions, before.sessions, "sessions changed \(message)", file: file, line: line)
    XCTAssertEqual(
        after.events.map(\.type), before.events.map(\.type), "events written \(message)", file: file, line: line)
    XCTAssertEqual(after.events, before.events, "events changed \(message)", file: file, line: line)
    XCTAssertEqual(
        after.securityLog.map(\.kind), before.securityLog.map(\.kind), "security log written \(message)", file: file,
        line: line)
    XCTAssertEqual(after.securityLog, before.securityLog, "security log changed \(message)", file: file, line: line)
}

/// A password of exactly `count` characters that is on no list.
func makePassword(length count: Int) -> String {
    let alphabet = Array("k7Qz-mV3x!pR9wLs")
    return String((0..<count).map { alphabet[$0 % alphabet.count] })
}
