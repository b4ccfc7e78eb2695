import Foundation
import MoatCore
import MoatStore
import XCTest

// MARK: - Fixtures

private struct TypeOnlyEncoder: EventEncoder {
    func encode(_ event: DomainEvent) -> [UInt8] { Array(event.type.utf8) }
}

private func id<ID: PrefixedID>(_ type: ID.Type, _ number: Int) -> ID {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
    var body: [Character] = []
    var rest = number
    for _ in 0..<26 {
        body.append(alphabet[rest % 32])
        rest /= 32
    }
    return ID(unchecked: ID.prefix + String(body.reversed()))
}

private func ms(_ value: Int64) -> Timestamp { Timestamp(milliseconds: value) }

private let keyring = SecretKeyring(current: (id: "test-key", key: [UInt8](repeating: 7, count: 32)))

/// Two tenants; users 1 and 2 in tenant 1, user 3 in tenant 2.
private struct Seed {
    let t1 = Tenant(id: id(TenantID.self, 1), slug: "one", name: "One", policy: TenantPolicy(), createdAt: ms(1))
    let t2 = Tenant(id: id(TenantID.self, 2), slug: "two", name: "Two", policy: TenantPolicy(), createdAt: ms(1))
    var u1: User { user(1, t1.id, "a@one.test") }
    var u2: User { user(2, t1.id, "b@one.test") }
    var u3: User { user(3, t2.id, "c@two.test") }

    func user(_ number: Int, _ tenant: TenantID, _ email: String) -> User {
        User(
            id: id(UserID.self, number), tenantID: tenant, email: email,
            passwordHash: "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA", role: .member, createdAt: ms(2))
    }

    func insert(into store: any AccountStore) async throws {
        let (t1, t2, u1, u2, u3) = (t1, t2, u1, u2, u3)
        try await store.write { writer in
            try writer.insert(t1)
            try writer.insert(t2)
            for user in [u1, u2, u3] { try writer.insert(user) }
        }
    }
}

private func credential(_ user: User, secret byte: UInt8 = 1, lastUsedStep: Int64? = nil) throws -> TwoFactorCredential {
    TwoFactorCredential(
        tenantID: user.tenantID, userID: user.id,
        sealedSecret: try keyring.sealTOTPSecret(
            [UInt8](repeating: byte, count: 20), tenant: user.tenantID, user: user.id),
        enabledAt: ms(1_000), lastUsedStep: lastUsedStep)
}

private func pending(_ user: User, expires: Int64, secret byte: UInt8 = 2) throws -> PendingTwoFactor {
    PendingTwoFactor(
        tenantID: user.tenantID, userID: user.id,
        sealedSecret: try keyring.sealTOTPSecret([UInt8](repeating: byte, count: 20), tenant: user.tenantID, user: user.id),
        createdAt: ms(10), expiresAt: ms(expires))
}

private func codes(_ user: User, prefix: String = "h") -> [RecoveryCode] {
    (0..<10).map { RecoveryCode(tenantID: user.tenantID, userID: user.id, slot: $0, codeHash: "\(prefix)\($0)") }
}

private func challenge(_ user: User, token byte: UInt8, expires: Int64) -> SignInChallenge {
    SignInChallenge(
        tokenHash: [UInt8](repeating: byte, count: 32), tenantID: user.tenantID, userID: user.id,
        client: ClientDetails(userAgent: "Firefox/126", ip: "192.0.2.\(byte)", location: "Porto", deviceName: "laptop"),
        createdAt: ms(100), expiresAt: ms(expires))
}

// MARK: - Tests

/// The two-factor store methods, on the in-memory reference store and on
/// SQLite, with the same expectations; then what only SQL can do to a row.
final class TwoFactorStoreTests: XCTestCase {
    /// Runs `body` on a fresh memory store, a fresh SQLite store and (with
    /// MOAT_TEST_POSTGRES_URL) a fresh PostgreSQL store, each seeded.
    private func onBothStores(
        file: StaticString = #filePath, line: UInt = #line,
        _ body: (any AccountStore, String, Seed) async throws -> Void
    ) async throws {
        let seed = Seed()
        let memory = MemoryAccountStore(encoder: TypeOnlyEncoder())
        try await seed.insert(into: memory)
        try await body(memory, "memory", seed)

        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let sqlite = try await SQLiteAccountStore.open(
            path: directory.path(), readerCount: 2, encoder: TypeOnlyEncoder(), logger: testLogger)
        try await seed.insert(into: sqlite)
        do {
            try await body(sqlite, "sqlite", seed)
        } catch {
            await sqlite.close()
            throw error
        }
        await sqlite.close()

        // And on PostgreSQL when a server is configured.
        guard testPostgresURL != nil else { return }
        let schema = try await PostgresTestSchema.create()
        let postgres = try await schema.openStore(encoder: TypeOnlyEncoder())
        try await seed.insert(into: postgres)
        do {
            try await body(postgres, "postgres", seed)
        } catch {
            await postgres.close()
            await schema.drop()
            throw error
        }
        await postgres.close()
        await schema.drop()
    }

    func testCredentialPendingCodesAndChallengesRoundTripAndReplace() async throws {
        try await onBothStores { store, name, seed in
            let (u1, u3, t1, t2) = (seed.u1, seed.u3, seed.t1.id, seed.t2.id)
            let first = try credential(u1, secret: 1, lastUsedStep: 5)
            try await store.write { try $0.setTwoFactor(first) }
            var read = try await store.read { try $0.twoFactor(tenant: t1, user: u1.id) }
            XCTAssertEqual(read, first, name)
            XCTAssertEqual(read?.algorithm, "SHA1", name)
            XCTAssertEqual(read?.digits, 6, name)
            XCTAssertEqual(read?.period, 30, name)

            // Replacing resets the replay guard and the failures to the new credential's.
            try await store.write { try $0.setTwoFactorAttempts(tenant: t1, user: u1.id, failures: 3, lockedUntil: ms(9_999)) }
            read = try await store.read { try $0.twoFactor(tenant: t1, user: u1.id) }
            XCTAssertEqual(read?.failedAttempts, 3, name)
            XCTAssertEqual(read?.lockedUntil, ms(9_999), name)
            let second = try credential(u1, secret: 9, lastUsedStep: nil)
            try await store.write { try $0.setTwoFactor(second) }
            read = try await store.read { try $0.twoFactor(tenant: t1, user: u1.id) }
            XCTAssertEqual(read, second, name)
            XCTAssertNil(read?.lastUsedStep, name)
            XCTAssertEqual(read?.failedAttempts, 0, name)
            XCTAssertNil(read?.lockedUntil, name)

            // Scoped by tenant.
            let elsewhere = try await store.read { try $0.twoFactor(tenant: t2, user: u1.id) }
            XCTAssertNil(elsewhere, name)
            let none = try await store.read { try $0.twoFactor(tenant: t2, user: u3.id) }
            XCTAssertNil(none, name)

            // Pending: set, replace.
            let p1 = try pending(u1, expires: 5_000, secret: 2)
            try await store.write { try $0.setPendingTwoFactor(p1) }
            var readPending = try await store.read { try $0.pendingTwoFactor(tenant: t1, user: u1.id) }
            XCTAssertEqual(readPending, p1, name)
            let p2 = try pending(u1, expires: 6_000, secret: 3)
            try await store.write { try $0.setPendingTwoFactor(p2) }
            readPending = try await store.read { try $0.pendingTwoFactor(tenant: t1, user: u1.id) }
            XCTAssertEqual(readPending, p2, name)
            let pendingElsewhere = try await store.read { try $0.pendingTwoFactor(tenant: t2, user: u1.id) }
            XCTAssertNil(pendingElsewhere, name)
            try await store.write { try $0.deletePendingTwoFactor(tenant: t2, user: u1.id) }
            readPending = try await store.read { try $0.pendingTwoFactor(tenant: t1, user: u1.id) }
            XCTAssertEqual(readPending, p2, "\(name): deleting in another tenant leaves it")
            try await store.write { try $0.deletePendingTwoFactor(tenant: t1, user: u1.id) }
            readPending = try await store.read { try $0.pendingTwoFactor(tenant: t1, user: u1.id) }
            XCTAssertNil(readPending, name)

            // Recovery codes: by slot, replaced as a whole.
            try await store.write { try $0.replaceRecoveryCodes(tenant: t1, user: u1.id, with: codes(u1).reversed()) }
            var readCodes = try await store.read { try $0.recoveryCodes(tenant: t1, user: u1.id) }
            XCTAssertEqual(readCodes, codes(u1), name)
            try await store.write {
                try $0.replaceRecoveryCodes(tenant: t1, user: u1.id, with: Array(codes(u1, prefix: "new").prefix(3)))
            }
            readCodes = try await store.read { try $0.recoveryCodes(tenant: t1, user: u1.id) }
            XCTAssertEqual(readCodes.map(\.codeHash), ["new0", "new1", "new2"], name)
            let codesElsewhere = try await store.read { try $0.recoveryCodes(tenant: t2, user: u1.id) }
            XCTAssertEqual(codesElsewhere, [], name)

            // Challenges.
            let c = challenge(u1, token: 1, expires: 1_000)
            try await store.write { try $0.insert(c) }
            let readChallenge = try await store.read { try $0.signInChallenge(tenant: t1, tokenHash: c.tokenHash) }
            XCTAssertEqual(readChallenge, c, name)
            let challengeElsewhere = try await store.read { try $0.signInChallenge(tenant: t2, tokenHash: c.tokenHash) }
            XCTAssertNil(challengeElsewhere, name)
        }
    }

    func testAdvanceStepIsConditional() async throws {
        try await onBothStores { store, name, seed in
            let (u1, t1, t2) = (seed.u1, seed.t1.id, seed.t2.id)
            let missing = try await store.write { try $0.advanceTwoFactorStep(tenant: t1, user: u1.id, step: 1) }
            XCTAssertFalse(missing, "\(name): no credential")
            try await store.write { try $0.setTwoFactor(try credential(u1)) }

            func advance(_ step: Int64, tenant: TenantID? = nil) async throws -> Bool {
                try await store.write { try $0.advanceTwoFactorStep(tenant: tenant ?? t1, user: u1.id, step: step) }
            }
            var outcomes: [Bool] = []
            outcomes.append(try await advance(100))
            outcomes.append(try await advance(100))
            outcomes.append(try await advance(99))
            outcomes.append(try await advance(101, tenant: t2))
            outcomes.append(try await advance(101))
            XCTAssertEqual(outcomes, [true, false, false, false, true], name)

            // A refused advance leaves the failures; an accepted one clears them and the lock.
            try await store.write { try $0.setTwoFactorAttempts(tenant: t1, user: u1.id, failures: 4, lockedUntil: ms(77)) }
            let refused = try await advance(50)
            XCTAssertFalse(refused, name)
            var read = try await store.read { try $0.twoFactor(tenant: t1, user: u1.id) }
            XCTAssertEqual(read?.failedAttempts, 4, name)
            XCTAssertEqual(read?.lockedUntil, ms(77), name)
            XCTAssertEqual(read?.lastUsedStep, 101, name)
            let accepted = try await advance(102)
            XCTAssertTrue(accepted, name)
            read = try await store.read { try $0.twoFactor(tenant: t1, user: u1.id) }
            XCTAssertEqual(read?.failedAttempts, 0, name)
            XCTAssertNil(read?.lockedUntil, name)
            XCTAssertEqual(read?.lastUsedStep, 102, name)

            // Large steps survive the round trip.
            let far = try await advance(Int64.max)
            XCTAssertTrue(far, name)
            read = try await store.read { try $0.twoFactor(tenant: t1, user: u1.id) }
            XCTAssertEqual(read?.lastUsedStep, Int64.max, name)
            let beyond = try await advance(Int64.max)
            XCTAssertFalse(beyond, name)
        }
    }

    func testConcurrentAdvancesWithTheSameStepHaveOneWinner() async throws {
        try await onBothStores { store, name, seed in
            let (u1, t1) = (seed.u1, seed.t1.id)
            try await store.write { try $0.setTwoFactor(try credential(u1, lastUsedStep: 10)) }
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<24 {
                    group.addTask { try await store.write { try $0.advanceTwoFactorStep(tenant: t1, user: u1.id, step: 11) } }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            XCTAssertEqual(wins, 1, name)

            // Readers that saw the old step still cannot both win (check-then-write in one transaction).
            let racing = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<24 {
                    group.addTask {
                        try await store.write { writer in
                            guard let last = try writer.twoFactor(tenant: t1, user: u1.id)?.lastUsedStep, last < 12 else {
                                return false
                            }
                            return try writer.advanceTwoFactorStep(tenant: t1, user: u1.id, step: 12)
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            XCTAssertEqual(racing, 1, name)
        }
    }

    func testUseRecoveryCodeOnce() async throws {
        try await onBothStores { store, name, seed in
            let (u1, u2, t1, t2) = (seed.u1, seed.u2, seed.t1.id, seed.t2.id)
            try await store.write { writer in
                try writer.replaceRecoveryCodes(tenant: t1, user: u1.id, with: codes(u1))
                try writer.replaceRecoveryCodes(tenant: t1, user: u2.id, with: codes(u2))
            }
            func use(_ slot: Int, user: UserID? = nil, tenant: TenantID? = nil, at: Int64 = 500) async throws -> Bool {
                try await store.write {
                    try $0.useRecoveryCode(tenant: tenant ?? t1, user: user ?? u1.id, slot: slot, at: ms(at))
                }
            }
            var outcomes: [Bool] = []
            outcomes.append(try await use(3, tenant: t2))
            outcomes.append(try await use(3))
            outcomes.append(try await use(3, at: 600))
            outcomes.append(try await use(10))
            outcomes.append(try await use(-1))
            outcomes.append(try await use(4))
            XCTAssertEqual(outcomes, [false, true, false, false, false, true], name)
            let read = try await store.read { try $0.recoveryCodes(tenant: t1, user: u1.id) }
            XCTAssertEqual(read.filter { $0.usedAt != nil }.map(\.slot), [3, 4], name)
            XCTAssertEqual(read.first { $0.slot == 3 }?.usedAt, ms(500), "\(name): the first use's time stays")
            let other = try await store.read { try $0.recoveryCodes(tenant: t1, user: u2.id) }
            XCTAssertTrue(other.allSatisfy { $0.usedAt == nil }, "\(name): another user's slot 3 is untouched")

            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for attempt in 0..<16 {
                    group.addTask {
                        try await store.write {
                            try $0.useRecoveryCode(tenant: t1, user: u1.id, slot: 7, at: ms(1_000 + Int64(attempt)))
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            XCTAssertEqual(wins, 1, name)
        }
    }

    func testConsumeSignInChallengeOnceBeforeExpiryInItsTenant() async throws {
        try await onBothStores { store, name, seed in
            let (u1, t1, t2) = (seed.u1, seed.t1.id, seed.t2.id)
            let live = challenge(u1, token: 1, expires: 1_000)
            let late = challenge(u1, token: 2, expires: 1_000)
            let racing = challenge(u1, token: 3, expires: 1_000)
            try await store.write { writer in
                for c in [live, late, racing] { try writer.insert(c) }
            }
            let elsewhere = try await store.write { try $0.consumeSignInChallenge(tenant: t2, tokenHash: live.tokenHash, at: ms(10)) }
            XCTAssertNil(elsewhere, "\(name): other tenant")
            let unknown = try await store.write {
                try $0.consumeSignInChallenge(tenant: t1, tokenHash: [UInt8](repeating: 9, count: 32), at: ms(10))
            }
            XCTAssertNil(unknown, name)

            let consumed = try await store.write { try $0.consumeSignInChallenge(tenant: t1, tokenHash: live.tokenHash, at: ms(999)) }
            var expected = live
            expected.usedAt = ms(999)
            XCTAssertEqual(consumed, expected, name)
            let again = try await store.write { try $0.consumeSignInChallenge(tenant: t1, tokenHash: live.tokenHash, at: ms(999)) }
            XCTAssertNil(again, "\(name): single use")
            let stored = try await store.read { try $0.signInChallenge(tenant: t1, tokenHash: live.tokenHash) }
            XCTAssertEqual(stored?.usedAt, ms(999), name)

            let expired = try await store.write { try $0.consumeSignInChallenge(tenant: t1, tokenHash: late.tokenHash, at: ms(1_000)) }
            XCTAssertNil(expired, "\(name): expired at its expiry time")
            let untouched = try await store.read { try $0.signInChallenge(tenant: t1, tokenHash: late.tokenHash) }
            XCTAssertNil(untouched?.usedAt, name)

            let wins = try await withThrowingTaskGroup(of: Int.self) { group in
                for attempt in 0..<16 {
                    group.addTask {
                        try await store.write {
                            try $0.consumeSignInChallenge(tenant: t1, tokenHash: racing.tokenHash, at: ms(100 + Int64(attempt)))
                        } == nil ? 0 : 1
                    }
                }
                return try await group.reduce(0, +)
            }
            XCTAssertEqual(wins, 1, name)
        }
    }

    func testDeleteTwoFactorRemovesEverythingOfThatUserOnly() async throws {
        try await onBothStores { store, name, seed in
            let (u1, u2, t1, t2) = (seed.u1, seed.u2, seed.t1.id, seed.t2.id)
            try await store.write { writer in
                for user in [u1, u2] {
                    try writer.setTwoFactor(try credential(user))
                    try writer.setPendingTwoFactor(try pending(user, expires: 5_000))
                    try writer.replaceRecoveryCodes(tenant: t1, user: user.id, with: codes(user))
                }
            }
            let wrongTenant = try await store.write { try $0.deleteTwoFactor(tenant: t2, user: u1.id) }
            XCTAssertFalse(wrongTenant, name)
            let deleted = try await store.write { try $0.deleteTwoFactor(tenant: t1, user: u1.id) }
            XCTAssertTrue(deleted, name)
            let (credential1, pending1, codes1) = try await store.read { reader in
                (
                    try reader.twoFactor(tenant: t1, user: u1.id), try reader.pendingTwoFactor(tenant: t1, user: u1.id),
                    try reader.recoveryCodes(tenant: t1, user: u1.id)
                )
            }
            XCTAssertNil(credential1, name)
            XCTAssertNil(pending1, name)
            XCTAssertEqual(codes1, [], name)
            let (credential2, pending2, codes2) = try await store.read { reader in
                (
                    try reader.twoFactor(tenant: t1, user: u2.id), try reader.pendingTwoFactor(tenant: t1, user: u2.id),
                    try reader.recoveryCodes(tenant: t1, user: u2.id)
                )
            }
            XCTAssertNotNil(credential2, name)
            XCTAssertNotNil(pending2, name)
            XCTAssertEqual(codes2.count, 10, name)

            let twice = try await store.write { try $0.deleteTwoFactor(tenant: t1, user: u1.id) }
            XCTAssertFalse(twice, "\(name): not on any more")

            // Only a pending enrolment: false, and the pending one goes too.
            try await store.write { try $0.setPendingTwoFactor(try pending(u1, expires: 5_000)) }
            let pendingOnly = try await store.write { try $0.deleteTwoFactor(tenant: t1, user: u1.id) }
            XCTAssertFalse(pendingOnly, name)
            let left = try await store.read { try $0.pendingTwoFactor(tenant: t1, user: u1.id) }
            XCTAssertNil(left, name)
        }
    }

    func testDeleteExpiredTwoFactorState() async throws {
        try await onBothStores { store, name, seed in
            let (u1, u2, u3, t1, t2) = (seed.u1, seed.u2, seed.u3, seed.t1.id, seed.t2.id)
            try await store.write { writer in
                try writer.insert(challenge(u1, token: 1, expires: 1_000))
                try writer.insert(challenge(u1, token: 2, expires: 2_000))
                try writer.insert(challenge(u2, token: 3, expires: 3_000))
                try writer.insert(challenge(u3, token: 4, expires: 1_000))
                try writer.setPendingTwoFactor(try pending(u1, expires: 1_500))
                try writer.setPendingTwoFactor(try pending(u2, expires: 2_500))
                try writer.setPendingTwoFactor(try pending(u3, expires: 1_000))
                try writer.setTwoFactor(try credential(u1))
            }
            let deleted = try await store.write { try $0.deleteExpiredTwoFactorState(tenant: t1, before: ms(2_000)) }
            XCTAssertEqual(deleted, 2, "\(name): one challenge and one pending enrolment expired before 2000")
            let state = try await store.read { reader in
                (
                    try [1, 2, 3].map { try reader.signInChallenge(tenant: t1, tokenHash: [UInt8](repeating: $0, count: 32)) != nil },
                    try reader.pendingTwoFactor(tenant: t1, user: u1.id) != nil,
                    try reader.pendingTwoFactor(tenant: t1, user: u2.id) != nil,
                    try reader.signInChallenge(tenant: t2, tokenHash: [UInt8](repeating: 4, count: 32)) != nil,
                    try reader.pendingTwoFactor(tenant: t2, user: u3.id) != nil,
                    try reader.twoFactor(tenant: t1, user: u1.id) != nil
                )
            }
            XCTAssertEqual(state.0, [false, true, true], name)
            XCTAssertFalse(state.1, name)
            XCTAssertTrue(state.2, name)
            XCTAssertTrue(state.3, "\(name): another tenant's challenge stays")
            XCTAssertTrue(state.4, "\(name): another tenant's pending enrolment stays")
            XCTAssertTrue(state.5, "\(name): the active credential is never expired")
            let again = try await store.write { try $0.deleteExpiredTwoFactorState(tenant: t1, before: ms(2_000)) }
            XCTAssertEqual(again, 0, name)
        }
    }

    func testAThrowingWriteLeavesTwoFactorStateUnchanged() async throws {
        try await onBothStores { store, name, seed in
            let (u1, t1) = (seed.u1, seed.t1.id)
            try await store.write { writer in
                try writer.setTwoFactor(try credential(u1, lastUsedStep: 5))
                try writer.replaceRecoveryCodes(tenant: t1, user: u1.id, with: codes(u1))
                try writer.insert(challenge(u1, token: 1, expires: 1_000))
            }
            do {
                try await store.write { writer in
                    _ = try writer.advanceTwoFactorStep(tenant: t1, user: u1.id, step: 6)
                    _ = try writer.useRecoveryCode(tenant: t1, user: u1.id, slot: 0, at: ms(10))
                    _ = try writer.consumeSignInChallenge(tenant: t1, tokenHash: [UInt8](repeating: 1, count: 32), at: ms(10))
                    throw IntentionalError()
                }
                XCTFail(name)
            } catch is IntentionalError {}
            let (read, recovery, c) = try await store.read { reader in
                (
                    try reader.twoFactor(tenant: t1, user: u1.id), try reader.recoveryCodes(tenant: t1, user: u1.id),
                    try reader.signInChallenge(tenant: t1, tokenHash: [UInt8](repeating: 1, count: 32))
                )
            }
            XCTAssertEqual(read?.lastUsedStep, 5, name)
            XCTAssertTrue(recovery.allSatisfy { $0.usedAt == nil }, name)
            XCTAssertNil(c?.usedAt, name)
        }
    }

    // MARK: SQLite only

    private func openSQLite(_ directory: TemporaryDirectory) async throws -> SQLiteAccountStore {
        try await SQLiteAccountStore.open(
            path: directory.path(), readerCount: 2, encoder: TypeOnlyEncoder(), logger: testLogger)
    }

    /// A ciphertext copied by SQL onto another user's row (same tenant or
    /// another) fails to open: the owner is bound as associated data.
    func testACiphertextMovedToAnotherRowDoesNotOpen() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openSQLite(directory)
        let seed = Seed()
        try await seed.insert(into: store)
        let (u1, u2, u3) = (seed.u1, seed.u2, seed.u3)
        try await store.write { writer in
            for user in [u1, u2, u3] {
                try writer.setTwoFactor(try credential(user, secret: UInt8(user.email.utf8.first!)))
                try writer.setPendingTwoFactor(try pending(user, expires: 9_000))
            }
        }
        // Each opens for its owner.
        for user in [u1, u2, u3] {
            let sealed = try await store.read { try $0.twoFactor(tenant: user.tenantID, user: user.id)?.sealedSecret }
            let secret = try keyring.openTOTPSecret(try XCTUnwrap(sealed), tenant: user.tenantID, user: user.id)
            XCTAssertEqual(secret, [UInt8](repeating: user.email.utf8.first!, count: 20))
        }

        for table in ["two_factor", "two_factor_pending"] {
            for victim in [u2, u3] {
                try await store.database.write { transaction in
                    try transaction.execute(
                        """
                        UPDATE \(table) SET
                            secret = (SELECT secret FROM \(table) WHERE user_id = ?),
                            key_id = (SELECT key_id FROM \(table) WHERE user_id = ?)
                        WHERE user_id = ?
                        """, [u1.id.rawValue, u1.id.rawValue, victim.id.rawValue])
                }
                let (active, pendingSecret) = try await store.read { reader in
                    (
                        try reader.twoFactor(tenant: victim.tenantID, user: victim.id)?.sealedSecret,
                        try reader.pendingTwoFactor(tenant: victim.tenantID, user: victim.id)?.sealedSecret
                    )
                }
                let moved = try XCTUnwrap(table == "two_factor" ? active : pendingSecret)
                let original = try await store.read { try $0.twoFactor(tenant: u1.tenantID, user: u1.id)?.sealedSecret }
                if table == "two_factor" { XCTAssertEqual(moved, original, "the bytes were copied") }
                XCTAssertThrowsError(try keyring.openTOTPSecret(moved, tenant: victim.tenantID, user: victim.id)) { error in
                    XCTAssertEqual((error as? DomainError)?.reason, "SECRET_UNREADABLE", "\(table) → \(victim.email)")
                }
            }
        }
        // Altering a byte in place fails too.
        try await store.database.write { transaction in
            try transaction.execute(
                "UPDATE two_factor SET secret = CAST(zeroblob(length(secret)) AS BLOB) WHERE user_id = ?", [u1.id.rawValue])
        }
        let zeroed = try await store.read { try $0.twoFactor(tenant: u1.tenantID, user: u1.id)?.sealedSecret }
        XCTAssertThrowsError(try keyring.openTOTPSecret(try XCTUnwrap(zeroed), tenant: u1.tenantID, user: u1.id))
        await store.close()
    }

    func testDeletingTheUserCascadesToItsTwoFactorRows() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openSQLite(directory)
        let seed = Seed()
        try await seed.insert(into: store)
        let (u1, u2, t1) = (seed.u1, seed.u2, seed.t1.id)
        try await store.write { writer in
            for (index, user) in [u1, u2].enumerated() {
                try writer.setTwoFactor(try credential(user))
                try writer.setPendingTwoFactor(try pending(user, expires: 9_000))
                try writer.replaceRecoveryCodes(tenant: t1, user: user.id, with: codes(user))
                try writer.insert(challenge(user, token: UInt8(10 + index), expires: 9_000))
            }
        }
        let tables = ["two_factor", "two_factor_pending", "recovery_codes", "sign_in_challenges"]
        func rows(of user: User) async throws -> [Int] {
            var counts: [Int] = []
            for table in tables {
                counts.append(
                    try await store.database.read { connection in
                        try connection.queryFirst("SELECT count(*) FROM \(table) WHERE user_id = ?", [user.id.rawValue]) {
                            try $0.int(at: 0)
                        } ?? -1
                    })
            }
            return counts
        }
        let before = try await rows(of: u1)
        XCTAssertEqual(before, [1, 1, 10, 1])
        try await store.database.write { transaction in
            try transaction.execute("DELETE FROM users WHERE tenant_id = ? AND id = ?", [t1.rawValue, u1.id.rawValue])
        }
        let after = try await rows(of: u1)
        XCTAssertEqual(after, [0, 0, 0, 0], "every two-factor row of the user went with it")
        let other = try await rows(of: u2)
        XCTAssertEqual(other, [1, 1, 10, 1], "the other user's rows stay")

        // A two-factor row cannot point at another tenant's user.
        let cross = TwoFactorCredential(
            tenantID: seed.t2.id, userID: u2.id, sealedSecret: SealedSecret(keyID: "k", box: [1]), enabledAt: ms(1))
        do {
            try await store.write { try $0.setTwoFactor(cross) }
            XCTFail("a cross-tenant credential was stored")
        } catch let error as StoreError {
            XCTAssertEqual(error.reason, .constraintForeignKey)
        }
        await store.close()
    }

    func testMigrationTwoCreatesTheTwoFactorTables() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openSQLite(directory)
        XCTAssertGreaterThanOrEqual(store.database.migrationReport.currentVersion, 2)
        let tables = try await store.database.read { connection in
            try connection.query("SELECT name FROM sqlite_schema WHERE type = 'table'") { try $0.string("name") }
        }
        for table in ["two_factor", "two_factor_pending", "recovery_codes", "sign_in_challenges"] {
            XCTAssertTrue(tables.contains(table), table)
        }
        await store.close()
    }
}
