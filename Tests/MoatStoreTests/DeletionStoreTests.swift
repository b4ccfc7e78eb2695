import Foundation
import MoatCore
import MoatStore
import Synchronization
import XCTest

// MARK: - Fixtures (file-private copies of the MoatCoreTests pieces)

/// A wall clock that moves only when a test moves it.
private final class DeletionTestClock: WallClock {
    private let current = Mutex(Timestamp(seconds: 1_750_000_000))
    func now() -> Timestamp { current.withLock { $0 } }
    func advance(seconds: Int64) { current.withLock { $0 = $0.adding(seconds: seconds) } }
    func advance(milliseconds: Int64) {
        current.withLock { $0 = Timestamp(milliseconds: $0.milliseconds + milliseconds) }
    }
}

/// Outbox payloads as JSON of the event, so the test reads them back.
private struct DeletionJSONEncoder: EventEncoder {
    func encode(_ event: DomainEvent) -> [UInt8] { Array((try? JSONEncoder().encode(event)) ?? Data()) }
    static func decode(_ record: EventRecord) throws -> DomainEvent {
        try JSONDecoder().decode(DomainEvent.self, from: Data(record.payload))
    }
}

private func ms(_ value: Int64) -> Timestamp { Timestamp(milliseconds: value) }

private let deletionKeyring = SecretKeyring(current: (id: "deletion-test", key: [UInt8](repeating: 9, count: 32)))
private let thirtyDays: Int64 = 30 * 86_400
private let client = ClientDetails(userAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", ip: "203.0.113.7")

/// An AccountService over a given store, with cheap hashing and a manual clock.
private final class DeletionWorld: @unchecked Sendable {
    let clock = DeletionTestClock()
    let store: any AccountStore
    let hasher: PasswordHasher
    let accounts: AccountService

    init(store: any AccountStore) throws {
        var hashing = HashingConfiguration()
        hashing.parameters = .init(memoryKiB: 64, iterations: 1, parallelism: 1)
        self.store = store
        hasher = try PasswordHasher(configuration: hashing, executor: InlineHashingExecutor())
        accounts = AccountService(store: store, hasher: hasher, clock: clock, secrets: deletionKeyring)
    }

    func events(after sequence: Int64 = 0) async throws -> [(EventRecord, DomainEvent)] {
        try await store.read { try $0.events(after: sequence, limit: 100_000) }.map {
            ($0, try DeletionJSONEncoder.decode($0))
        }
    }

    func lastSequence() async throws -> Int64 {
        try await store.read { try $0.events(after: 0, limit: 100_000) }.last?.sequence ?? 0
    }

    /// Every kind of row a user can have: sessions, a reset token, a 2FA
    /// credential, ten recovery codes, a pending enrolment, an open sign-in
    /// challenge, security-log entries.
    func giveEveryKindOfRow(_ tenant: Tenant, email: String, password: String) async throws -> (User, String) {
        let session = try await accounts.signIn.signIn(tenant: tenant, email: email, password: password, client: client)
        _ = try await accounts.signIn.signIn(tenant: tenant, email: email, password: password, client: client)
        _ = try await accounts.twoFactor.beginTwoFactorEnrollment(tenant: tenant, token: session.token, password: password, client: client)
        try await accounts.passwords.requestPasswordReset(tenant: tenant, email: email, client: client)
        let user = session.user
        let now = clock.now()
        // 2FA on, written directly (this target has no TOTP to confirm with).
        let credential = TwoFactorCredential(
            tenantID: tenant.id, userID: user.id,
            sealedSecret: try deletionKeyring.sealTOTPSecret([UInt8](repeating: 3, count: 20), tenant: tenant.id, user: user.id),
            enabledAt: now, lastUsedStep: nil)
        let codes = (0..<10).map { RecoveryCode(tenantID: tenant.id, userID: user.id, slot: $0, codeHash: "hash\($0)") }
        try await store.write { writer in
            try writer.setTwoFactor(credential)
            try writer.replaceRecoveryCodes(tenant: tenant.id, user: user.id, with: codes)
            guard var current = try writer.user(tenant: tenant.id, id: user.id) else { return }
            current.twoFactorEnabled = true
            try writer.update(current)
        }
        // A team of theirs, with an invitation they sent.
        let actor = try await accounts.actor(tenant: tenant.id, token: session.token, callerIsAdministrator: false)
        let team = try await accounts.teams.createTeam(tenant: tenant, actor: actor, name: "Team of \(email)")
        _ = try await accounts.teams.invite(
            tenant: tenant, actor: actor, teamID: team.team.id.rawValue, email: "friend-of-\(email)", role: .member)
        // A challenge, left open.
        guard case .secondFactorRequired = try await accounts.signIn.beginSignIn(
            tenant: tenant, email: email, password: password, client: client)
        else {
            XCTFail("expected a challenge")
            return (user, session.token)
        }
        return (user, session.token)
    }
}

/// How many rows of each table (but `events`) mention `value` in any column.
private func rowsMentioning(_ value: String, in database: Database) async throws -> [String: Int] {
    try await database.read { connection in
        let tables = try connection.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ) { try $0.string(at: 0) }
        var found: [String: Int] = [:]
        for table in tables where table != "events" {
            let columns = try connection.query("SELECT name FROM pragma_table_info(?)", [table]) { try $0.string(at: 0) }
            guard !columns.isEmpty else { continue }
            let condition = columns.map { "CAST(\"\($0)\" AS TEXT) = ?" }.joined(separator: " OR ")
            let count = try connection.queryFirst(
                "SELECT count(*) FROM \"\(table)\" WHERE \(condition)", Array(repeating: value, count: columns.count)
            ) { try $0.int(at: 0) } ?? 0
            if count > 0 { found[table] = count }
        }
        return found
    }
}

private func tableCounts(_ database: Database) async throws -> [String: Int] {
    try await database.read { connection in
        let tables = try connection.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ) { try $0.string(at: 0) }
        var counts: [String: Int] = [:]
        for table in tables {
            counts[table] = try connection.queryFirst("SELECT count(*) FROM \"\(table)\"") { try $0.int(at: 0) } ?? -1
        }
        return counts
    }
}

// MARK: - The purge through the real SQL

final class DeletionStoreTests: XCTestCase {
    private func openSQLite(_ directory: TemporaryDirectory) async throws -> SQLiteAccountStore {
        try await SQLiteAccountStore.open(
            path: directory.path(), readerCount: 2, encoder: DeletionJSONEncoder(), logger: testLogger)
    }

    func testAccountPurgeLeavesNoRowOfTheUserButTheOutboxEvents() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openSQLite(directory)
        let world = try DeletionWorld(store: store)

        let (tenant, _) = try await world.accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        _ = try await world.accounts.users.createUser(
            tenant: tenant, actor: .administrator, email: "member@acme.test", password: "member-pass-2209-ok",
            role: .member)
        _ = try await world.accounts.users.createUser(
            tenant: tenant, actor: .administrator, email: "bystander@acme.test", password: "member-pass-2209-ok",
            role: .member)
        let (member, token) = try await world.giveEveryKindOfRow(
            tenant, email: "member@acme.test", password: "member-pass-2209-ok")
        let (bystander, _) = try await world.giveEveryKindOfRow(
            tenant, email: "bystander@acme.test", password: "member-pass-2209-ok")

        let before = try await rowsMentioning(member.id.rawValue, in: store.database)
        for table in ["users", "sessions", "password_resets", "two_factor", "two_factor_pending", "recovery_codes",
            "sign_in_challenges", "security_log", "team_members", "team_invitations"]
        {
            XCTAssertGreaterThan(before[table] ?? 0, 0, "the member has \(table) rows before the purge")
        }
        let bystanderBefore = try await rowsMentioning(bystander.id.rawValue, in: store.database)

        // The flag off again (the rows stay) so the deletion needs no code:
        // this target has no TOTP to compute one.
        try await store.write { writer in
            guard var current = try writer.user(tenant: tenant.id, id: member.id) else { return }
            current.twoFactorEnabled = false
            try writer.update(current)
        }
        let deleted = try await world.accounts.deletion.requestAccountDeletion(
            tenant: tenant, token: token, confirmation: "DELETE", password: "member-pass-2209-ok", code: "", client: client)
        let purgeAfter = try XCTUnwrap(deleted.purgeAfter)
        XCTAssertEqual(purgeAfter, world.clock.now().adding(seconds: thirtyDays))
        let reread = try await store.read { try $0.user(tenant: tenant.id, id: member.id) }
        XCTAssertEqual(reread?.status, .pendingDeletion)
        XCTAssertEqual(reread?.purgeAfter, purgeAfter, "purge_after round-trips through SQL")

        world.clock.advance(milliseconds: purgeAfter.milliseconds - world.clock.now().milliseconds - 1_000)
        let value1 = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual([value1.accounts, value1.tenants], [0, 0])
        let value2 = try await store.read { try $0.user(tenant: tenant.id, id: member.id) }
        XCTAssertNotNil(value2)

        world.clock.advance(seconds: 1)
        let sequence = try await world.lastSequence()
        let value3 = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual([value3.accounts, value3.tenants], [1, 0])

        let after = try await rowsMentioning(member.id.rawValue, in: store.database)
        XCTAssertEqual(after, [:], "rows still mention the purged user")
        let bystanderAfter = try await rowsMentioning(bystander.id.rawValue, in: store.database)
        XCTAssertEqual(bystanderAfter, bystanderBefore, "the bystander's rows are untouched")
        let events = try await world.events(after: sequence)
        XCTAssertEqual(events.map(\.0.type), ["team.member_removed", "account.purged"])
        if case .accountPurged(let user, let tenantID, let email)? = events.last?.1 {
            XCTAssertEqual(user, member.id)
            XCTAssertEqual(tenantID, tenant.id)
            XCTAssertEqual(email, "member@acme.test")
        }
        // The outbox keeps what it had about the user.
        let mentions = try await store.database.read { connection in
            try connection.queryFirst("SELECT count(*) FROM events WHERE subject = ?", [member.id.rawValue]) {
                try $0.int(at: 0)
            } ?? 0
        }
        XCTAssertGreaterThan(mentions, 0)

        // The email is free again through the real UNIQUE (tenant_id, email).
        let again = try await world.accounts.users.createUser(
            tenant: tenant, actor: .administrator, email: "member@acme.test", password: "new-pass-5531-fresh",
            role: .member)
        XCTAssertNotEqual(again.id, member.id)
        _ = try await world.accounts.signIn.signIn(
            tenant: tenant, email: "member@acme.test", password: "new-pass-5531-fresh", client: client)
        await store.close()
    }

    func testTenantPurgeLeavesNoRowOfTheTenantButTheOutboxEvents() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openSQLite(directory)
        let world = try DeletionWorld(store: store)

        let (tenant, owner) = try await world.accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        let (other, _) = try await world.accounts.tenants.createTenant(
            slug: "other", name: "Other", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        var ids: [String] = [tenant.id.rawValue, owner.id.rawValue]
        for email in ["a@acme.test", "b@acme.test"] {
            _ = try await world.accounts.users.createUser(
                tenant: tenant, actor: .administrator, email: email, password: "member-pass-2209-ok", role: .member)
            let (user, _) = try await world.giveEveryKindOfRow(tenant, email: email, password: "member-pass-2209-ok")
            ids.append(user.id.rawValue)
        }
        let (otherUser, _) = try await world.giveEveryKindOfRow(other, email: "owner@acme.test", password: "owner-pass-7741-ok")
        _ = try await world.accounts.signIn.signIn(tenant: tenant, email: "owner@acme.test", password: "owner-pass-7741-ok", client: client)
        let otherBefore = try await rowsMentioning(other.id.rawValue, in: store.database)
        XCTAssertGreaterThan(otherBefore["sessions"] ?? 0, 0)

        let sequence = try await world.lastSequence()
        let pending = try await world.accounts.deletion.requestTenantDeletion(tenant: "acme", confirmation: "DELETE")
        // Every live session in the tenant was revoked through the SQL UPDATE … RETURNING.
        let live = try await store.database.read { connection in
            try connection.queryFirst(
                "SELECT count(*) FROM sessions WHERE tenant_id = ? AND revoked_at IS NULL", [tenant.id.rawValue]
            ) { try $0.int(at: 0) } ?? -1
        }
        XCTAssertEqual(live, 0)
        let revokedEvents = try await world.events(after: sequence).filter { $0.0.type == "session.revoked" }
        XCTAssertEqual(revokedEvents.count, 5, "two sessions each for a and b, one for the owner")
        let stored = try await store.read { try $0.tenant(id: tenant.id) }
        XCTAssertEqual(stored?.status, .pendingDeletion)
        XCTAssertEqual(stored?.purgeAfter, pending.purgeAfter, "tenant purge_after round-trips through SQL")

        world.clock.advance(seconds: thirtyDays)
        let purgeSequence = try await world.lastSequence()
        let value4 = try await world.accounts.deletion.purgeDueDeletions()
        XCTAssertEqual([value4.accounts, value4.tenants], [0, 1])

        for id in ids {
            let value5 = try await rowsMentioning(id, in: store.database)
            XCTAssertEqual(value5, [:], "rows still mention \(id)")
        }
        let value6 = try await rowsMentioning(other.id.rawValue, in: store.database)
        XCTAssertEqual(value6, otherBefore)
        let value7 = try await store.read { try $0.user(tenant: other.id, id: otherUser.id) }
        XCTAssertNotNil(value7)

        let events = try await world.events(after: purgeSequence)
        XCTAssertEqual(events.map(\.0.type), ["account.purged", "account.purged", "account.purged", "tenant.purged"])
        if case .tenantPurged(let id, let slug, _, let users)? = events.last?.1 {
            XCTAssertEqual(id, tenant.id)
            XCTAssertEqual(slug, "acme")
            XCTAssertEqual(users, 3)
        }
        let outbox = try await store.database.read { connection in
            try connection.queryFirst("SELECT count(*) FROM events WHERE tenant_id = ?", [tenant.id.rawValue]) {
                try $0.int(at: 0)
            } ?? 0
        }
        XCTAssertGreaterThan(outbox, 1, "the outbox keeps the tenant's events")

        // The slug is free again.
        let (fresh, _) = try await world.accounts.tenants.createTenant(
            slug: "acme", name: "Acme again", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        XCTAssertNotEqual(fresh.id, tenant.id)
        await store.close()
    }
}

// MARK: - The purge on two instances of one PostgreSQL

final class PostgresPurgeTests: XCTestCase {
    /// Two instances (two stores and services on one database) purging at
    /// the same time, several rounds each, purge every due account exactly
    /// once: one `account.purged` per account, and no purge fails. (The
    /// purge re-reads the account in its serializable transaction, so the
    /// loser of a race finds it gone.)
    func testTwoInstancesPurgeEachAccountOnce() async throws {
        let schema = try await PostgresTestSchema.create()
        let storeA = try await schema.openStore(encoder: DeletionJSONEncoder(), connections: 3)
        let storeB = try await schema.openStore(encoder: DeletionJSONEncoder(), connections: 3)
        let a = try DeletionWorld(store: storeA)
        let b = try DeletionWorld(store: storeB)
        let (tenant, _) = try await a.accounts.tenants.createTenant(
            slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: "owner-pass-7741-ok")
        var members: [UserID] = []
        for index in 0..<6 {
            let email = "member\(index)@acme.test"
            _ = try await a.accounts.users.createUser(
                tenant: tenant, actor: .administrator, email: email, password: "member-pass-2209-ok", role: .member)
            let session = try await a.accounts.signIn.signIn(
                tenant: tenant, email: email, password: "member-pass-2209-ok", client: client)
            _ = try await a.accounts.deletion.requestAccountDeletion(
                tenant: tenant, token: session.token, confirmation: "DELETE", password: "member-pass-2209-ok", code: "",
                client: client)
            members.append(session.user.id)
        }
        let sequence = try await a.lastSequence()
        for world in [a, b] { world.clock.advance(seconds: thirtyDays + 1) }

        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for world in [a, b, a, b] {
                group.addTask { try await world.accounts.deletion.purgeDueDeletions().accounts }
            }
            var total = 0
            for try await purged in group { total += purged }
            return total
        }
        XCTAssertEqual(counts, members.count, "each account purged by exactly one of the runs")
        let purged = try await a.events(after: sequence).compactMap { record, event -> UserID? in
            if case .accountPurged(let user, _, _) = event { return user }
            return nil
        }
        XCTAssertEqual(purged.sorted { $0.rawValue < $1.rawValue }, members.sorted { $0.rawValue < $1.rawValue })
        let left = try await storeB.read { try $0.userCount(tenant: tenant.id) }
        XCTAssertEqual(left, 1, "only the owner remains")
        await storeA.close()
        await storeB.close()
        await schema.drop()
    }
}

// MARK: - The deletion queries, memory and SQLite alike

final class DeletionQueryParityTests: XCTestCase {
    private func user(_ tenant: TenantID, _ email: String, role: TenantRole, status: UserStatus, purgeAfter: Int64?)
        -> User
    {
        User(
            id: .random(), tenantID: tenant, email: email,
            passwordHash: "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA", role: role, status: status, createdAt: ms(1),
            purgeAfter: purgeAfter.map(ms))
    }

    private func session(_ user: User, token byte: UInt8, revoked: Bool) -> Session {
        var session = Session(
            id: .random(), tenantID: user.tenantID, userID: user.id, tokenHash: [UInt8](repeating: byte, count: 32),
            client: ClientDetails(userAgent: "curl/8", ip: "192.0.2.1"), createdAt: ms(10), lastActiveAt: ms(10),
            absoluteExpiresAt: ms(10_000_000), idleTimeoutSeconds: 3_600, secondFactorSatisfied: false)
        if revoked {
            session.revokedAt = ms(20)
            session.revokeReason = "sign_out"
        }
        return session
    }

    /// What each query answers on one store, seeded identically.
    private struct Answers: Equatable {
        var owners: [Int]
        var due: [[String]]
        var dueTenants: [[String]]
        var userCounts: [Int]
        var revoked: [[String]]
        var liveAfter: [Int]
        var revokeReasons: [String]
        var revokedAgain: Int
    }

    private func answers(_ store: any AccountStore) async throws -> Answers {
        let t1 = Tenant(id: .random(), slug: "one", name: "One", policy: TenantPolicy(), createdAt: ms(1))
        let t2 = Tenant(
            id: .random(), slug: "two", name: "Two", policy: TenantPolicy(), createdAt: ms(1), status: .pendingDeletion,
            purgeAfter: ms(5_000))
        let t3 = Tenant(
            id: .random(), slug: "three", name: "Three", policy: TenantPolicy(), createdAt: ms(1),
            status: .pendingDeletion, purgeAfter: ms(3_000))
        let owner = user(t1.id, "owner@one.test", role: .owner, status: .active, purgeAfter: nil)
        let owner2 = user(t1.id, "owner2@one.test", role: .owner, status: .active, purgeAfter: nil)
        let goneOwner = user(t1.id, "gone@one.test", role: .owner, status: .pendingDeletion, purgeAfter: 4_000)
        let disabledOwner = user(t1.id, "off@one.test", role: .owner, status: .disabled, purgeAfter: nil)
        let admin = user(t1.id, "admin@one.test", role: .admin, status: .active, purgeAfter: nil)
        let late = user(t1.id, "late@one.test", role: .member, status: .pendingDeletion, purgeAfter: 9_000)
        let early = user(t1.id, "early@one.test", role: .member, status: .pendingDeletion, purgeAfter: 2_000)
        // purge_after set but not pending: not due.
        let odd = user(t1.id, "odd@one.test", role: .member, status: .active, purgeAfter: 1_000)
        let elsewhere = user(t2.id, "x@two.test", role: .owner, status: .pendingDeletion, purgeAfter: 1_000)
        let users = [owner, owner2, goneOwner, disabledOwner, admin, late, early, odd, elsewhere]
        let sessions = [
            session(owner, token: 1, revoked: false), session(owner, token: 2, revoked: true),
            session(admin, token: 3, revoked: false), session(elsewhere, token: 4, revoked: false),
        ]
        try await store.write { writer in
            for tenant in [t1, t2, t3] { try writer.insert(tenant) }
            for user in users { try writer.insert(user) }
            for session in sessions { try writer.insert(session) }
        }
        let names = Dictionary(uniqueKeysWithValues: users.map { ($0.id, $0.email) })
        let tenantNames = [t1.id: "one", t2.id: "two", t3.id: "three"]
        let sessionNames = Dictionary(uniqueKeysWithValues: sessions.map { ($0.id, "\(names[$0.userID]!)#\($0.tokenHash[0])") })

        let owners = try await store.read { reader in
            [
                try reader.activeOwnerCount(tenant: t1.id, except: nil),
                try reader.activeOwnerCount(tenant: t1.id, except: owner.id),
                try reader.activeOwnerCount(tenant: t1.id, except: admin.id),
                try reader.activeOwnerCount(tenant: t1.id, except: goneOwner.id),
                try reader.activeOwnerCount(tenant: t2.id, except: nil),
            ]
        }
        let due = try await store.read { reader in
            [
                try reader.usersDueForPurge(tenant: t1.id, at: ms(1_999), limit: 10),
                try reader.usersDueForPurge(tenant: t1.id, at: ms(2_000), limit: 10),
                try reader.usersDueForPurge(tenant: t1.id, at: ms(10_000), limit: 10),
                try reader.usersDueForPurge(tenant: t1.id, at: ms(10_000), limit: 2),
                try reader.usersDueForPurge(tenant: t1.id, at: ms(10_000), limit: 0),
                try reader.usersDueForPurge(tenant: t2.id, at: ms(10_000), limit: 10),
            ].map { $0.map { names[$0.id]! } }
        }
        let dueTenants = try await store.read { reader in
            [
                try reader.tenantsDueForPurge(at: ms(2_999), limit: 10),
                try reader.tenantsDueForPurge(at: ms(3_000), limit: 10),
                try reader.tenantsDueForPurge(at: ms(5_000), limit: 10),
                try reader.tenantsDueForPurge(at: ms(5_000), limit: 1),
            ].map { $0.map { tenantNames[$0.id]! } }
        }
        let userCounts = try await store.read { reader in
            [try reader.userCount(tenant: t1.id), try reader.userCount(tenant: t2.id), try reader.userCount(tenant: t3.id)]
        }
        let revoked = try await store.write { writer in
            [
                try writer.revokeTenantSessions(tenant: t1.id, at: ms(50), reason: "tenant_deletion"),
                try writer.revokeTenantSessions(tenant: t3.id, at: ms(50), reason: "tenant_deletion"),
            ].map { $0.map { "\(sessionNames[$0.0]!)/\(names[$0.1]!)" }.sorted() }
        }
        let after = try await store.read { reader in
            try [owner, admin, elsewhere].map { user in
                try reader.sessions(tenant: user.tenantID, user: user.id).filter { $0.revokedAt == nil }.count
            }
        }
        let ownerSessions = [sessions[0].id, sessions[1].id]
        let reasons = try await store.read { reader in
            try ownerSessions.map { id in
                let session = try reader.session(tenant: t1.id, id: id)
                return "\(session?.revokeReason ?? "-")@\(session?.revokedAt?.milliseconds ?? -1)"
            }
        }
        let again = try await store.write { try $0.revokeTenantSessions(tenant: t1.id, at: ms(60), reason: "again") }.count
        return Answers(
            owners: owners, due: due, dueTenants: dueTenants, userCounts: userCounts, revoked: revoked,
            liveAfter: after, revokeReasons: reasons, revokedAgain: again)
    }

    func testDeletionQueriesAnswerTheSameOnMemoryAndSQLite() async throws {
        let memory = try await answers(MemoryAccountStore(encoder: DeletionJSONEncoder()))
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let sqlite = try await SQLiteAccountStore.open(
            path: directory.path(), readerCount: 2, encoder: DeletionJSONEncoder(), logger: testLogger)
        let fromSQL = try await answers(sqlite)
        await sqlite.close()
        var fromPostgres: Answers?
        if testPostgresURL != nil {
            let schema = try await PostgresTestSchema.create()
            let postgres = try await schema.openStore(encoder: DeletionJSONEncoder())
            fromPostgres = try await answers(postgres)
            await postgres.close()
            await schema.drop()
        }

        // The expected answers, spelled out once; both stores must give them.
        let expected = Answers(
            owners: [2, 1, 2, 2, 0],
            due: [
                [], ["early@one.test"], ["early@one.test", "gone@one.test", "late@one.test"],
                ["early@one.test", "gone@one.test"], [], ["x@two.test"],
            ],
            dueTenants: [[], ["three"], ["three", "two"], ["three"]],
            userCounts: [8, 1, 0],
            revoked: [["admin@one.test#3/admin@one.test", "owner@one.test#1/owner@one.test"], []],
            liveAfter: [0, 0, 1],
            revokeReasons: ["tenant_deletion@50", "sign_out@20"],
            revokedAgain: 0)
        XCTAssertEqual(memory, expected, "memory")
        XCTAssertEqual(fromSQL, expected, "sqlite")
        if let fromPostgres { XCTAssertEqual(fromPostgres, expected, "postgres") }
    }

    func testDeletingAUserOrTenantThatIsNotThereIsFalse() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let sqlite = try await SQLiteAccountStore.open(
            path: directory.path(), readerCount: 2, encoder: DeletionJSONEncoder(), logger: testLogger)
        var stores: [any AccountStore] = [MemoryAccountStore(encoder: DeletionJSONEncoder()), sqlite]
        let schema = testPostgresURL != nil ? try await PostgresTestSchema.create() : nil
        let postgres = try await schema?.openStore(encoder: DeletionJSONEncoder())
        if let postgres { stores.append(postgres) }
        for store in stores {
            let t1 = Tenant(id: .random(), slug: "one", name: "One", policy: TenantPolicy(), createdAt: ms(1))
            let t2 = Tenant(id: .random(), slug: "two", name: "Two", policy: TenantPolicy(), createdAt: ms(1))
            let member = user(t1.id, "m@one.test", role: .member, status: .active, purgeAfter: nil)
            try await store.write { writer in
                try writer.insert(t1)
                try writer.insert(t2)
                try writer.insert(member)
            }
            let outcomes = try await store.write { writer in
                [
                    try writer.deleteUser(tenant: t2.id, id: member.id),  // wrong tenant
                    try writer.deleteUser(tenant: t1.id, id: .random()),
                    try writer.deleteTenant(id: .random()),
                    try writer.deleteUser(tenant: t1.id, id: member.id),
                    try writer.deleteUser(tenant: t1.id, id: member.id),
                ]
            }
            XCTAssertEqual(outcomes, [false, false, false, true, false], "\(type(of: store))")
        }
        await sqlite.close()
        await postgres?.close()
        await schema?.drop()
    }
}
