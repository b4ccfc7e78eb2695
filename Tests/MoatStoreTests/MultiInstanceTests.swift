import Foundation
import MoatCore
import MoatCrypto
import MoatStore
import Synchronization
import XCTest

// Several moatd instances on one PostgreSQL, as several stores and account
// services on one schema (each store its own pool, listener and job-lock
// connections, as in separate processes). They share a manual clock.

/// A wall clock that moves only when a test moves it.
private final class SharedTestClock: WallClock {
    private let current = Mutex(Timestamp(seconds: 1_750_000_000))
    func now() -> Timestamp { current.withLock { $0 } }
    func advance(seconds: Int64) { current.withLock { $0 = $0.adding(seconds: seconds) } }
}

/// Outbox payloads as JSON of the event, so tests read tokens back.
private struct InstanceJSONEncoder: EventEncoder {
    func encode(_ event: DomainEvent) -> [UInt8] { Array((try? JSONEncoder().encode(event)) ?? Data()) }
    static func decode(_ record: EventRecord) throws -> DomainEvent {
        try JSONDecoder().decode(DomainEvent.self, from: Data(record.payload))
    }
}

private let instanceKeyring = SecretKeyring(current: (id: "instances", key: [UInt8](repeating: 5, count: 32)))
private let browser = ClientDetails(userAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", ip: "203.0.113.9")

/// One moatd's account domain over its own store.
private final class Instance: Sendable {
    let store: PostgresAccountStore
    let accounts: AccountService

    init(store: PostgresAccountStore, clock: SharedTestClock, configuration: AccountConfiguration) throws {
        var hashing = HashingConfiguration()
        hashing.parameters = .init(memoryKiB: 64, iterations: 1, parallelism: 1)
        self.store = store
        accounts = AccountService(
            store: store, hasher: try PasswordHasher(configuration: hashing, executor: InlineHashingExecutor()),
            clock: clock, configuration: configuration, secrets: instanceKeyring,
            addressFailures: PostgresAddressFailureCounter(store: store))
    }
}

/// `count` instances on a fresh schema.
private final class Fleet: Sendable {
    let schema: PostgresTestSchema
    let clock = SharedTestClock()
    let configuration: AccountConfiguration
    let instances: Mutex<[Instance]>

    init(_ count: Int, configuration: AccountConfiguration = AccountConfiguration()) async throws {
        schema = try await PostgresTestSchema.create()
        self.configuration = configuration
        instances = Mutex([])
        for _ in 0..<count { try await start() }
    }

    var all: [Instance] { instances.withLock { $0 } }
    subscript(_ index: Int) -> Instance { instances.withLock { $0[index] } }

    /// Starts one more instance.
    @discardableResult
    func start() async throws -> Instance {
        let store = try await schema.openStore(encoder: InstanceJSONEncoder(), connections: 3)
        let instance = try Instance(store: store, clock: clock, configuration: configuration)
        instances.withLock { $0.append(instance) }
        return instance
    }

    /// Stops every instance (the database stays).
    func stopAll() async {
        for instance in instances.withLock({ list in defer { list.removeAll() }; return list }) {
            await instance.store.close()
        }
    }

    func tearDown() async {
        await stopAll()
        await schema.drop()
    }

    func events() async throws -> [DomainEvent] {
        try await self[0].store.read { try $0.events(after: 0, limit: 100_000) }.map(InstanceJSONEncoder.decode)
    }
}

/// "OK", or the reason of the `DomainError` (or the error) `body` threw.
private func outcome(_ body: () async throws -> Void) async -> String {
    do {
        try await body()
        return "OK"
    } catch let error as DomainError {
        return error.reason
    } catch {
        return "\(error)"
    }
}

private func tally(_ outcomes: [String]) -> [String: Int] {
    outcomes.reduce(into: [:]) { $0[$1, default: 0] += 1 }
}

// MARK: - Guarantee 2: shared lockout and throttles

final class MultiInstanceLockoutTests: XCTestCase {
    /// Wrong passwords alternating between two instances lock the account
    /// after the tenant's threshold (5), exactly as on one instance: the
    /// count is the user row's.
    func testWrongPasswordsSpreadOverInstancesLockAfterTheSameCount() async throws {
        let fleet = try await Fleet(2)
        let (tenant, _) = try await fleet[0].accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        var seen: [String] = []
        for attempt in 0..<5 {
            seen.append(
                await outcome {
                    _ = try await fleet[attempt % 2].accounts.signIn.signIn(
                        tenant: tenant, email: "owner@acme.test", password: "wrong-\(attempt)-guess", client: browser)
                })
        }
        XCTAssertEqual(seen, Array(repeating: "INVALID_CREDENTIALS", count: 5))
        for instance in fleet.all {
            let locked = await outcome {
                _ = try await instance.accounts.signIn.signIn(
                    tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: browser)
            }
            XCTAssertEqual(locked, "SIGN_IN_LOCKED", "even the right password waits, on every instance")
        }
        let stored = try await fleet[1].store.read { try $0.user(tenant: tenant.id, email: "owner@acme.test") }
        XCTAssertEqual(stored?.failedSignIns, 5)
        await fleet.tearDown()
    }

    /// 30 wrong guesses at once, spread over three instances: exactly the
    /// threshold (5) are checked, every other one is refused unchecked, and
    /// the security log has exactly 5 failures. (Each attempt is counted
    /// before its hash is checked, in a write that refuses once locked.)
    func testParallelGuessesOnThreeInstancesCannotExceedTheThreshold() async throws {
        let fleet = try await Fleet(3)
        let (tenant, owner) = try await fleet[0].accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        let outcomes = await withTaskGroup(of: String.self) { group in
            for guess in 0..<30 {
                let instance = fleet[guess % 3]
                group.addTask {
                    await outcome {
                        _ = try await instance.accounts.signIn.signIn(
                            tenant: tenant, email: "owner@acme.test", password: "guess-\(guess)-wrong", client: browser)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(tally(outcomes), ["INVALID_CREDENTIALS": 5, "SIGN_IN_LOCKED": 25])
        let failures = try await fleet[2].store.read {
            try $0.securityLog(tenant: tenant.id, user: owner.id, beforeID: nil, limit: 100)
        }.filter { $0.kind == .signInFailed }
        XCTAssertEqual(failures.count, 5)
        await fleet.tearDown()
    }

    /// An email with no account locks after the same count whether the
    /// failures come to one instance or several, in sequence or at once;
    /// the lock is in the database, so it survives every instance
    /// restarting, and a right password elsewhere in the tenant is not held up.
    func testUnknownEmailLockoutIsSharedAndSurvivesARestart() async throws {
        let fleet = try await Fleet(3)
        let (tenant, _) = try await fleet[0].accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        for attempt in 0..<5 {
            let seen = await outcome {
                _ = try await fleet[attempt % 3].accounts.signIn.signIn(
                    tenant: tenant, email: "nobody@acme.test", password: "guess-\(attempt)-wrong", client: browser)
            }
            XCTAssertEqual(seen, "INVALID_CREDENTIALS")
        }
        let parallel = await withTaskGroup(of: String.self) { group in
            for guess in 0..<30 {
                let instance = fleet[guess % 3]
                group.addTask {
                    await outcome {
                        _ = try await instance.accounts.signIn.signIn(
                            tenant: tenant, email: "ghost@acme.test", password: "guess-\(guess)-wrong", client: browser)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(tally(parallel), ["INVALID_CREDENTIALS": 5, "SIGN_IN_LOCKED": 25])

        await fleet.stopAll()
        let restarted = try await fleet.start()
        for email in ["nobody@acme.test", "ghost@acme.test"] {
            let seen = await outcome {
                _ = try await restarted.accounts.signIn.signIn(
                    tenant: tenant, email: email, password: "one-more-guess", client: browser)
            }
            XCTAssertEqual(seen, "SIGN_IN_LOCKED", "\(email) stays locked after the restart")
        }
        let owner = await outcome {
            _ = try await restarted.accounts.signIn.signIn(
                tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: browser)
        }
        XCTAssertEqual(owner, "OK")
        await fleet.tearDown()
    }

    /// The per-address throttle counts one address's failures across
    /// instances (and emails) into one window, and the window survives a
    /// restart.
    func testAddressThrottleIsSharedAcrossInstances() async throws {
        var configuration = AccountConfiguration()
        configuration.addressThrottle = AddressThrottlePolicy(failureLimit: 4, windowSeconds: 900)
        let fleet = try await Fleet(2, configuration: configuration)
        let (tenant, _) = try await fleet[0].accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        for attempt in 0..<4 {
            let seen = await outcome {
                _ = try await fleet[attempt % 2].accounts.signIn.signIn(
                    tenant: tenant, email: "user\(attempt)@acme.test", password: "guess-wrong-pw", client: browser)
            }
            XCTAssertEqual(seen, "INVALID_CREDENTIALS")
        }
        for instance in fleet.all {
            let seen = await outcome {
                _ = try await instance.accounts.signIn.signIn(
                    tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: browser)
            }
            XCTAssertEqual(seen, "ADDRESS_THROTTLED")
        }
        await fleet.stopAll()
        let restarted = try await fleet.start()
        let seen = await outcome {
            _ = try await restarted.accounts.signIn.signIn(
                tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: browser)
        }
        XCTAssertEqual(seen, "ADDRESS_THROTTLED")
        var elsewhere = browser
        elsewhere.ip = "198.51.100.20"
        let other = await outcome {
            _ = try await restarted.accounts.signIn.signIn(
                tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: elsewhere)
        }
        XCTAssertEqual(other, "OK", "another address is not held up")
        await fleet.tearDown()
    }
}

// MARK: - The unknown-email table on both SQL backends

final class UnknownEmailLockoutStoreTests: XCTestCase {
    /// The table keeps at most `capacity` emails, forgetting the least
    /// recently failed first; updates of a held email never evict; a
    /// tenant's rows go with it.
    func testCapacityForgetsTheLeastRecentlyFailed() async throws {
        try await onEachSQLStore(encoder: InstanceJSONEncoder()) { store, backend in
            let tenant = Tenant(id: .random(), slug: "t", name: "T", policy: TenantPolicy(), createdAt: Timestamp(milliseconds: 1))
            try await store.write { try $0.insert(tenant) }
            for (index, email) in ["a@t.test", "b@t.test", "c@t.test"].enumerated() {
                try await store.write { writer in
                    try writer.setUnknownEmailLockout(
                        tenant: tenant.id, email: email, Lockout(failures: index + 1),
                        at: Timestamp(milliseconds: Int64(100 + index)), capacity: 3)
                }
            }
            // Refreshing "a" makes "b" the least recent.
            try await store.write { writer in
                try writer.setUnknownEmailLockout(
                    tenant: tenant.id, email: "a@t.test", Lockout(failures: 7, lockedUntil: Timestamp(milliseconds: 999)),
                    at: Timestamp(milliseconds: 200), capacity: 3)
                try writer.setUnknownEmailLockout(
                    tenant: tenant.id, email: "d@t.test", Lockout(failures: 1), at: Timestamp(milliseconds: 201), capacity: 3)
            }
            let held = try await store.read { reader in
                try ["a@t.test", "b@t.test", "c@t.test", "d@t.test"].map {
                    try reader.unknownEmailLockout(tenant: tenant.id, email: $0)
                }
            }
            XCTAssertEqual(
                held,
                [Lockout(failures: 7, lockedUntil: Timestamp(milliseconds: 999)), nil, Lockout(failures: 3), Lockout(failures: 1)],
                backend)
            _ = try await store.write { try $0.deleteTenant(id: tenant.id) }
            let gone = try await store.read { try $0.unknownEmailLockout(tenant: tenant.id, email: "a@t.test") }
            XCTAssertNil(gone, "\(backend): cascades with the tenant")
        }
    }

    /// On SQLite too the unknown-email lockout survives a restart.
    func testSQLiteKeepsTheUnknownEmailLockoutAcrossARestart() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var hashing = HashingConfiguration()
        hashing.parameters = .init(memoryKiB: 64, iterations: 1, parallelism: 1)
        let hasher = try PasswordHasher(configuration: hashing, executor: InlineHashingExecutor())
        let clock = SharedTestClock()
        var store = try await SQLiteAccountStore.open(
            path: directory.path(), readerCount: 2, encoder: InstanceJSONEncoder(), logger: testLogger)
        var accounts = AccountService(store: store, hasher: hasher, clock: clock)
        let (tenant, _) = try await accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        for attempt in 0..<5 {
            let seen = await outcome {
                _ = try await accounts.signIn.signIn(
                    tenant: tenant, email: "nobody@acme.test", password: "guess-\(attempt)-wrong", client: browser)
            }
            XCTAssertEqual(seen, "INVALID_CREDENTIALS")
        }
        await store.close()
        store = try await SQLiteAccountStore.open(
            path: directory.path(), readerCount: 2, encoder: InstanceJSONEncoder(), logger: testLogger)
        accounts = AccountService(store: store, hasher: hasher, clock: clock)
        let seen = await outcome {
            _ = try await accounts.signIn.signIn(
                tenant: tenant, email: "nobody@acme.test", password: "guess-again-wrong", client: browser)
        }
        XCTAssertEqual(seen, "SIGN_IN_LOCKED")
        await store.close()
    }
}

// MARK: - Guarantee 3: single use across instances

final class MultiInstanceSingleUseTests: XCTestCase {
    /// Runs `race` on instance 0 and instance 1 at once and returns both outcomes.
    private func race(_ fleet: Fleet, _ race: @escaping @Sendable (Instance) async throws -> Void) async -> [String] {
        await withTaskGroup(of: String.self) { group in
            for instance in fleet.all.prefix(2) { group.addTask { await outcome { try await race(instance) } } }
            return await group.reduce(into: []) { $0.append($1) }.sorted()
        }
    }

    /// One TOTP code, one recovery code, one reset token and one invitation
    /// token, each spent on two instances at the same moment: one winner
    /// each, and the loser gets the reason of a spent secret.
    func testTheSameSecretRacedOnTwoInstancesHasOneWinner() async throws {
        let fleet = try await Fleet(2)
        let (tenant, owner) = try await fleet[0].accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        let session = try await fleet[0].accounts.signIn.signIn(
            tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: browser)
        let enrollment = try await fleet[0].accounts.twoFactor.beginTwoFactorEnrollment(
            tenant: tenant, token: session.token, password: "owner-pass-7741-ok", client: browser)
        let secret = try XCTUnwrap(Base32.decode(enrollment.secretBase32.replacingOccurrences(of: " ", with: "")))
        let totp = try TOTP(secret: secret)
        let (recoveryCodes, _) = try await fleet[0].accounts.twoFactor.confirmTwoFactorEnrollment(
            tenant: tenant, token: session.token, code: try totp.code(at: fleet.clock.now().seconds), client: browser)

        // TOTP: a code of a later step, verified on both at once.
        fleet.clock.advance(seconds: 60)
        let code = try totp.code(at: fleet.clock.now().seconds)
        let totpOutcomes = await race(fleet) { instance in
            try await instance.accounts.twoFactor.verifyTwoFactor(
                tenant: tenant, token: session.token, code: code, client: browser)
        }
        XCTAssertEqual(totpOutcomes, ["OK", "TOTP_CODE_REUSED"])

        // A recovery code finishing two sign-in challenges, one per instance.
        var challenges: [String] = []
        for instance in fleet.all {
            guard
                case .secondFactorRequired(let challenge) = try await instance.accounts.signIn.beginSignIn(
                    tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: browser)
            else { return XCTFail("2FA is on: a challenge comes") }
            challenges.append(challenge.token)
        }
        let recoveryCode = recoveryCodes[0]
        let recoveryOutcomes = await withTaskGroup(of: String.self) { group in
            for (instance, challenge) in zip(fleet.all, challenges) {
                group.addTask {
                    await outcome {
                        _ = try await instance.accounts.signIn.completeSignIn(
                            tenant: tenant, challenge: challenge, code: "", recoveryCode: recoveryCode, client: browser)
                    }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }.sorted()
        }
        XCTAssertEqual(recoveryOutcomes, ["OK", "RECOVERY_CODE_INVALID"])

        // A reset token (2FA is on, so each reset also spends a fresh code
        // of its own step: the token is what races).
        try await fleet[0].accounts.passwords.requestPasswordReset(tenant: tenant, email: "owner@acme.test", client: browser)
        let resetEvents = try await fleet.events()
        let resetToken = try XCTUnwrap(
            resetEvents.compactMap { event -> String? in
                if case .passwordResetRequested(_, _, let token, _, _, _, _) = event { return token }
                return nil
            }.last)
        fleet.clock.advance(seconds: 60)
        let resetCode = try totp.code(at: fleet.clock.now().seconds)
        let resetOutcomes = await race(fleet) { instance in
            _ = try await instance.accounts.passwords.resetPassword(
                tenant: tenant, token: resetToken, newPassword: "a-new-pass-5512-ok", code: resetCode)
        }
        XCTAssertEqual(resetOutcomes.filter { $0 == "OK" }.count, 1, "\(resetOutcomes)")
        XCTAssertTrue(
            resetOutcomes.contains("RESET_TOKEN_INVALID") || resetOutcomes.contains("TOTP_CODE_REUSED"),
            "the loser is refused: \(resetOutcomes)")

        // An invitation for a new account, accepted on both at once.
        let team = try await fleet[0].accounts.teams.createTeam(
            tenant: tenant, actor: .administrator, name: "Support", ownerUserID: owner.id.rawValue)
        _ = try await fleet[0].accounts.teams.invite(
            tenant: tenant, actor: .administrator, teamID: team.team.id.rawValue, email: "new@acme.test", role: .member)
        let inviteEvents = try await fleet.events()
        let invitationToken = try XCTUnwrap(
            inviteEvents.compactMap { event -> String? in
                if case .teamInvitationCreated(_, _, _, _, _, let token, _, _, _) = event { return token }
                return nil
            }.last)
        let acceptOutcomes = await race(fleet) { instance in
            _ = try await instance.accounts.teams.acceptInvitation(
                tenant: tenant, token: invitationToken, sessionToken: "", password: "joiner-pass-3318-ok")
        }
        XCTAssertEqual(acceptOutcomes.filter { $0 == "OK" }.count, 1, "\(acceptOutcomes)")
        let members = try await fleet[1].store.read { try $0.teamMembers(tenant: tenant.id, team: team.team.id) }
        XCTAssertEqual(members.count, 2, "the owner and one new member")
        await fleet.tearDown()
    }
}

// MARK: - Guarantee 5: background jobs

final class MultiInstanceJobTests: XCTestCase {
    /// A job's advisory lock is held by one instance at a time: while one
    /// runs the purge another skips it (but may run another job), and once
    /// it is done the next taker runs.
    func testAJobRunsOnOneInstanceAtATime() async throws {
        let fleet = try await Fleet(2)
        let a = fleet[0].store
        let b = fleet[1].store
        let inside = try await a.exclusively(.purge) { () -> [String] in
            let purge = try await b.exclusively(.purge) { "ran" } ?? "skipped"
            let cleanup = try await b.exclusively(.sessionCleanup) { "ran" } ?? "skipped"
            let again = try await a.exclusively(.purge) { "ran" } ?? "skipped"
            return [purge, cleanup, again]
        }
        XCTAssertEqual(inside, ["skipped", "ran", "skipped"], "the lock is per job and per holder, not per store")
        let after = try await b.exclusively(.purge) { "ran" }
        XCTAssertEqual(after, "ran")
        await fleet.tearDown()
    }

    /// Session cleanup racing on two instances deletes each ended session
    /// once (the totals add up to the ended sessions) and no live one.
    func testSessionCleanupOnTwoInstancesDeletesEachEndedSessionOnce() async throws {
        let fleet = try await Fleet(2)
        let (tenant, _) = try await fleet[0].accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        var ended = 0
        for index in 0..<8 {
            let session = try await fleet[index % 2].accounts.signIn.signIn(
                tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: browser)
            if index < 6 {
                try await fleet[index % 2].accounts.signIn.signOut(tenant: tenant, token: session.token)
                ended += 1
            }
        }
        fleet.clock.advance(seconds: 2 * 86_400)
        let live = try await fleet[0].accounts.signIn.signIn(
            tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: browser)
        let deleted = try await withThrowingTaskGroup(of: Int.self) { group in
            for instance in fleet.all + fleet.all {
                group.addTask { try await instance.accounts.sessions.purgeEndedSessions(retentionSeconds: 86_400) }
            }
            return try await group.reduce(0, +)
        }
        XCTAssertEqual(deleted, ended)
        let left = try await fleet[1].store.read { try $0.sessions(tenant: tenant.id, user: live.user.id) }
        XCTAssertEqual(left.count, 3, "the two unrevoked older sessions and the new one stay")
        await fleet.tearDown()
    }

    /// Last-active times flushed by two instances in either order keep the
    /// latest: the store only raises them.
    func testLastActiveFlushesFromTwoInstancesKeepTheLatest() async throws {
        let fleet = try await Fleet(2)
        let (tenant, _) = try await fleet[0].accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        let session = try await fleet[0].accounts.signIn.signIn(
            tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: browser)
        fleet.clock.advance(seconds: 600)
        _ = try await fleet[0].accounts.validate(tenantReference: tenant.id.rawValue, token: session.token)
        let early = fleet.clock.now()
        fleet.clock.advance(seconds: 600)
        _ = try await fleet[1].accounts.validate(tenantReference: tenant.id.rawValue, token: session.token)
        let late = fleet.clock.now()
        // The later activity is flushed first, the earlier one after it.
        let flushedLate = try await fleet[1].accounts.sessions.flushLastActive()
        let flushedEarly = try await fleet[0].accounts.sessions.flushLastActive()
        XCTAssertEqual([flushedLate, flushedEarly], [1, 1])
        let stored = try await fleet[0].store.read { try $0.session(tenant: tenant.id, id: session.session.id) }
        XCTAssertEqual(stored?.lastActiveAt, late)
        XCTAssertLessThan(early, late)
        await fleet.tearDown()
    }

    /// Event retention racing on two instances deletes each prunable event
    /// once.
    func testEventRetentionOnTwoInstancesDeletesEachEventOnce() async throws {
        let fleet = try await Fleet(2)
        let (tenant, _) = try await fleet[0].accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        for index in 0..<5 {
            _ = try await fleet[index % 2].accounts.users.createUser(
                tenant: tenant, actor: .administrator, email: "m\(index)@acme.test", password: "member-pass-2209-ok",
                role: .member)
        }
        var settings = EventStreamConfiguration()
        settings.retentionSeconds = 60
        settings.pruneBatch = 2
        let streams = fleet.all.map {
            EventStream(store: $0.store, signal: $0.store.eventSignal, clock: fleet.clock, configuration: settings)
        }
        let newest = try await fleet[0].store.read { try $0.newestEventSequence() }
        try await fleet[0].store.write { writer in
            _ = try writer.registerEventConsumer(
                EventConsumer(name: "mailer", cursor: newest, createdAt: fleet.clock.now(), lastPolledAt: nil, lastAckedAt: nil))
        }
        fleet.clock.advance(seconds: 120)
        let deleted = try await withThrowingTaskGroup(of: Int.self) { group in
            for stream in streams + streams { group.addTask { try await stream.prune() } }
            return try await group.reduce(0, +)
        }
        XCTAssertEqual(Int64(deleted), newest)
        let left = try await fleet[1].store.read { try $0.events(after: 0, limit: 1000) }
        XCTAssertEqual(left.count, 0)
        await fleet.tearDown()
    }
}
