import Foundation
import MoatCore
import MoatStore
import XCTest

// MARK: - Fixtures

private struct TypeEventEncoder: EventEncoder {
    func encode(_ event: DomainEvent) -> [UInt8] { Array(event.type.utf8) }
}

/// A deterministic, well-formed id: lexical order follows `number`.
private func fixedID<ID: PrefixedID>(_ type: ID.Type, _ number: Int) -> ID {
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

private func hash(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 32) }

private func tenant(_ number: Int, _ slug: String) -> Tenant {
    Tenant(id: fixedID(TenantID.self, number), slug: slug, name: slug, policy: TenantPolicy(), createdAt: ms(1))
}

private func user(_ number: Int, _ tenant: TenantID, _ email: String) -> User {
    User(
        id: fixedID(UserID.self, number), tenantID: tenant, email: email,
        passwordHash: "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA", role: .member, createdAt: ms(2))
}

private func team(_ number: Int, _ tenant: TenantID, _ name: String, at: Int64 = 10) -> Team {
    Team(id: fixedID(TeamID.self, number), tenantID: tenant, name: name, createdAt: ms(at))
}

private func member(_ team: Team, _ user: User, _ role: TeamRole, at: Int64 = 20) -> TeamMember {
    TeamMember(tenantID: team.tenantID, teamID: team.id, userID: user.id, role: role, joinedAt: ms(at))
}

private func invitation(
    _ number: Int, _ team: Team, email: String, role: TeamRole = .member, token: UInt8, by: User?, at: Int64,
    expires: Int64
) -> TeamInvitation {
    TeamInvitation(
        id: fixedID(InvitationID.self, number), tenantID: team.tenantID, teamID: team.id, email: email, role: role,
        tokenHash: hash(token), invitedBy: by?.id, createdAt: ms(at), expiresAt: ms(expires))
}

private func openStore(_ directory: TemporaryDirectory) async throws -> SQLiteAccountStore {
    try await SQLiteAccountStore.open(path: directory.path(), readerCount: 2, encoder: TypeEventEncoder(), logger: testLogger)
}

private func scalar(_ sql: String, _ bindings: [any SQLiteBindable] = [], in database: Database) async throws -> Int {
    try await database.read { connection in try connection.queryFirst(sql, bindings) { try $0.int(at: 0) } ?? 0 }
}

// MARK: - Tests

/// The team tables on SQLite: conformance to the memory store, tenant
/// scoping in the schema, cascades, single-use acceptance.
final class SQLiteTeamStoreTests: XCTestCase {
    func testConformanceWithMemoryStore() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let memory = try await runTeamScenario(MemoryAccountStore(encoder: TypeEventEncoder()))
        let store = try await openStore(directory)
        let sqlite = try await runTeamScenario(store)
        await store.close()
        XCTAssertEqual(memory.count, sqlite.count)
        for (reference, observed) in zip(memory, sqlite) {
            XCTAssertEqual(reference.value, observed.value, reference.label)
        }
        XCTAssertGreaterThan(memory.count, 30)
    }

    /// The team scenario on PostgreSQL gives the reference's observations.
    func testPostgresConformsToTheMemoryStore() async throws {
        let schema = try await PostgresTestSchema.create()
        let memory = try await runTeamScenario(MemoryAccountStore(encoder: TypeEventEncoder()))
        let store = try await schema.openStore(encoder: TypeEventEncoder())
        let postgres = try await runTeamScenario(store)
        await store.close()
        await schema.drop()
        XCTAssertEqual(memory.count, postgres.count)
        for (reference, observed) in zip(memory, postgres) {
            XCTAssertEqual(reference.value, observed.value, reference.label)
        }
    }

    /// Deleting a user row (as the account purge will) deletes their
    /// memberships, the invitations they sent and those they accepted, in
    /// the same statement; other rows stay.
    func testDeletingAUserCascadesToMembershipsAndInvitations() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openStore(directory)
        let acme = tenant(1, "acme")
        let alice = user(1, acme.id, "alice@example.com")
        let bob = user(2, acme.id, "bob@example.com")
        let carol = user(3, acme.id, "carol@example.com")
        let platform = team(1, acme.id, "Platform")
        try await store.write { writer in
            try writer.insert(acme)
            for user in [alice, bob, carol] { try writer.insert(user) }
            try writer.insert(platform)
            try writer.insert(member(platform, alice, .owner))
            try writer.insert(member(platform, bob, .admin))
            try writer.insert(member(platform, carol, .member))
            try writer.insert(invitation(1, platform, email: "x@example.com", token: 1, by: bob, at: 30, expires: 900))
            try writer.insert(invitation(2, platform, email: "y@example.com", token: 2, by: alice, at: 31, expires: 900))
            try writer.insert(invitation(3, platform, email: "z@example.com", token: 3, by: nil, at: 32, expires: 900))
        }
        _ = try await store.write { try $0.acceptTeamInvitation(tenant: acme.id, tokenHash: hash(3), user: carol.id, at: ms(40)) }

        try await store.database.write { transaction in
            _ = try transaction.execute("DELETE FROM users WHERE tenant_id = ? AND id = ?", [acme.id.rawValue, bob.id.rawValue])
        }
        let (members, open, accepted) = try await store.read { reader in
            (
                try reader.teamMembers(tenant: acme.id, team: platform.id).map(\.userID),
                try reader.openTeamInvitations(tenant: acme.id, team: platform.id).map(\.email),
                try reader.teamInvitation(tenant: acme.id, tokenHash: hash(3))
            )
        }
        XCTAssertEqual(members, [alice.id, carol.id])
        XCTAssertEqual(open, ["y@example.com"], "bob's invitation went with him")
        XCTAssertEqual(accepted?.acceptedBy, carol.id)

        try await store.database.write { transaction in
            _ = try transaction.execute("DELETE FROM users WHERE id = ?", [carol.id.rawValue])
        }
        let rows = try await scalar("SELECT count(*) FROM team_invitations", in: store.database)
        XCTAssertEqual(rows, 1, "the invitation carol accepted went with her")
        let memberRows = try await scalar("SELECT count(*) FROM team_members", in: store.database)
        XCTAssertEqual(memberRows, 1)

        // Deleting the tenant takes everything.
        try await store.database.write { transaction in
            _ = try transaction.execute("DELETE FROM tenants WHERE id = ?", [acme.id.rawValue])
        }
        for table in ["teams", "team_members", "team_invitations"] {
            let left = try await scalar("SELECT count(*) FROM \(table)", in: store.database)
            XCTAssertEqual(left, 0, table)
        }
        await store.close()
    }

    func testSchemaRefusesCrossTenantReferences() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openStore(directory)
        let acme = tenant(1, "acme")
        let globex = tenant(2, "globex")
        let alice = user(1, acme.id, "alice@example.com")
        let gus = user(2, globex.id, "gus@example.com")
        let platform = team(1, acme.id, "Platform")
        try await store.write { writer in
            try writer.insert(acme)
            try writer.insert(globex)
            try writer.insert(alice)
            try writer.insert(gus)
            try writer.insert(platform)
        }
        let attempts: [(String, @Sendable (any AccountStoreWriter) throws -> Void)] = [
            ("member of another tenant", { try $0.insert(member(platform, gus, .member)) }),
            (
                "membership filed under another tenant",
                {
                    try $0.insert(
                        TeamMember(tenantID: globex.id, teamID: platform.id, userID: gus.id, role: .member, joinedAt: ms(1)))
                }
            ),
            (
                "invitation by another tenant's user",
                { try $0.insert(invitation(1, platform, email: "x@example.com", token: 1, by: gus, at: 1, expires: 9)) }
            ),
            ("team of a missing tenant", { try $0.insert(team(2, fixedID(TenantID.self, 99), "Ghost")) }),
        ]
        for (label, body) in attempts {
            do {
                try await store.write { try body($0) }
                XCTFail("\(label): accepted")
            } catch let error as StoreError {
                XCTAssertEqual(error.reason, .constraintForeignKey, label)
            }
        }
        await store.close()
    }

    func testAcceptIsSingleUseUnderConcurrency() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, _ in
            try await acceptRace(store)
        }
    }

    private func acceptRace(_ store: any ClosableAccountStore) async throws {
        let acme = tenant(1, "acme")
        let users = (1...8).map { user($0, acme.id, "u\($0)@example.com") }
        let platform = team(1, acme.id, "Platform")
        try await store.write { writer in
            try writer.insert(acme)
            for user in users { try writer.insert(user) }
            try writer.insert(platform)
            try writer.insert(invitation(1, platform, email: "u1@example.com", token: 7, by: nil, at: 1, expires: 1_000))
        }
        let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
            for user in users {
                group.addTask {
                    try await store.write {
                        try $0.acceptTeamInvitation(tenant: acme.id, tokenHash: hash(7), user: user.id, at: ms(50)) != nil
                    }
                }
            }
            var count = 0
            for try await won in group where won { count += 1 }
            return count
        }
        XCTAssertEqual(winners, 1)
        await store.close()
    }
}

// MARK: - Conformance scenario

private struct Observation {
    enum Value: Equatable {
        case team(Team?), teams([Team]), memberships([TeamMembership])
        case member(TeamMember?), members([TeamMember])
        case invitation(TeamInvitation?), invitations([TeamInvitation])
        case flag(Bool)
        case outcome(String)
    }

    var label: String
    var value: Value
}

private func runTeamScenario(_ store: any AccountStore) async throws -> [Observation] {
    var observations: [Observation] = []
    func observe(_ label: String, _ value: Observation.Value) { observations.append(Observation(label: label, value: value)) }
    func attempt(_ label: String, _ body: () async throws -> Void) async {
        do {
            try await body()
            observe(label, .outcome("ok"))
        } catch let error as DomainError {
            observe(label, .outcome(error.reason))
        } catch {
            observe(label, .outcome(String(describing: type(of: error))))
        }
    }

    let acme = tenant(1, "acme")
    let globex = tenant(2, "globex")
    let alice = user(1, acme.id, "alice@example.com")
    let bob = user(2, acme.id, "bob@example.com")
    let carol = user(3, acme.id, "carol@example.com")
    let gus = user(4, globex.id, "gus@example.com")
    // Names sort by bytes: "Zeta" < "alpha", "é" after ASCII.
    let teams = [
        team(1, acme.id, "alpha"), team(2, acme.id, "Zeta"), team(3, acme.id, "alpha"), team(4, acme.id, "éclair"),
        team(5, acme.id, "beta"),
    ]
    let foreignTeam = team(6, globex.id, "alpha")
    await attempt("seed") {
        try await store.write { writer in
            try writer.insert(acme)
            try writer.insert(globex)
            for user in [alice, bob, carol, gus] { try writer.insert(user) }
            for team in teams + [foreignTeam] { try writer.insert(team) }
        }
    }
    observe("team", .team(try await store.read { try $0.team(tenant: acme.id, id: teams[0].id) }))
    observe("team via globex", .team(try await store.read { try $0.team(tenant: globex.id, id: teams[0].id) }))
    observe("teams", .teams(try await store.read { try $0.teams(tenant: acme.id, after: nil, limit: 10) }))
    observe("teams limit 2", .teams(try await store.read { try $0.teams(tenant: acme.id, after: nil, limit: 2) }))
    observe(
        "teams after alpha/1",
        .teams(try await store.read {
            try $0.teams(tenant: acme.id, after: TeamPageKey(name: "alpha", id: teams[0].id), limit: 10)
        }))
    observe(
        "teams after a missing key",
        .teams(try await store.read {
            try $0.teams(tenant: acme.id, after: TeamPageKey(name: "b", id: teams[0].id), limit: 10)
        }))
    observe("teams limit 0", .teams(try await store.read { try $0.teams(tenant: acme.id, after: nil, limit: 0) }))
    observe("globex teams", .teams(try await store.read { try $0.teams(tenant: globex.id, after: nil, limit: 10) }))

    await attempt("members") {
        try await store.write { writer in
            try writer.insert(member(teams[0], alice, .owner))
            try writer.insert(member(teams[0], bob, .admin))
            try writer.insert(member(teams[1], alice, .member))
            try writer.insert(member(teams[3], alice, .admin))
            try writer.insert(member(teams[4], carol, .owner))
            try writer.insert(member(foreignTeam, gus, .owner))
        }
    }
    await attempt("duplicate member") { try await store.write { try $0.insert(member(teams[0], bob, .member)) } }
    await attempt("rolled back member") {
        try await store.write { writer in
            try writer.insert(member(teams[2], carol, .member))
            throw IntentionalError()
        }
    }
    observe("member", .member(try await store.read { try $0.teamMember(tenant: acme.id, team: teams[0].id, user: bob.id) }))
    observe(
        "member via globex",
        .member(try await store.read { try $0.teamMember(tenant: globex.id, team: teams[0].id, user: bob.id) }))
    observe("rolled back", .member(try await store.read { try $0.teamMember(tenant: acme.id, team: teams[2].id, user: carol.id) }))
    observe("members", .members(try await store.read { try $0.teamMembers(tenant: acme.id, team: teams[0].id) }))
    observe("members via globex", .members(try await store.read { try $0.teamMembers(tenant: globex.id, team: teams[0].id) }))
    observe(
        "alice's teams",
        .memberships(try await store.read { try $0.teamMemberships(tenant: acme.id, user: alice.id, after: nil, limit: 10) }))
    observe(
        "alice's teams page 2",
        .memberships(try await store.read {
            try $0.teamMemberships(
                tenant: acme.id, user: alice.id, after: TeamPageKey(name: "Zeta", id: teams[1].id), limit: 1)
        }))
    observe(
        "gus's teams via acme",
        .memberships(try await store.read { try $0.teamMemberships(tenant: acme.id, user: gus.id, after: nil, limit: 10) }))

    observe("set role", .flag(try await store.write { try $0.setTeamRole(tenant: acme.id, team: teams[0].id, user: bob.id, role: .owner) }))
    observe("set role via globex", .flag(try await store.write { try $0.setTeamRole(tenant: globex.id, team: teams[0].id, user: bob.id, role: .member) }))
    observe("set role of non-member", .flag(try await store.write { try $0.setTeamRole(tenant: acme.id, team: teams[0].id, user: carol.id, role: .member) }))
    observe("after set role", .members(try await store.read { try $0.teamMembers(tenant: acme.id, team: teams[0].id) }))
    observe("remove via globex", .flag(try await store.write { try $0.deleteTeamMember(tenant: globex.id, team: teams[1].id, user: alice.id) }))
    observe("remove", .flag(try await store.write { try $0.deleteTeamMember(tenant: acme.id, team: teams[1].id, user: alice.id) }))
    observe("remove again", .flag(try await store.write { try $0.deleteTeamMember(tenant: acme.id, team: teams[1].id, user: alice.id) }))
    observe("rename", .flag(try await store.write { try $0.renameTeam(tenant: acme.id, id: teams[1].id, name: "Omega") }))
    observe("rename via globex", .flag(try await store.write { try $0.renameTeam(tenant: globex.id, id: teams[1].id, name: "X") }))
    observe("renamed", .team(try await store.read { try $0.team(tenant: acme.id, id: teams[1].id) }))

    let invitations = [
        invitation(1, teams[0], email: "x@example.com", token: 1, by: alice, at: 100, expires: 1_000),
        invitation(2, teams[0], email: "y@example.com", role: .admin, token: 2, by: nil, at: 200, expires: 1_000),
        invitation(3, teams[0], email: "z@example.com", token: 3, by: bob, at: 200, expires: 300),
        invitation(4, teams[4], email: "x@example.com", token: 4, by: carol, at: 100, expires: 1_000),
    ]
    await attempt("invitations") {
        try await store.write { writer in for invitation in invitations { try writer.insert(invitation) } }
    }
    observe("open", .invitations(try await store.read { try $0.openTeamInvitations(tenant: acme.id, team: teams[0].id) }))
    observe("open via globex", .invitations(try await store.read { try $0.openTeamInvitations(tenant: globex.id, team: teams[0].id) }))
    observe("by id", .invitation(try await store.read { try $0.teamInvitation(tenant: acme.id, id: invitations[1].id) }))
    observe("by id via globex", .invitation(try await store.read { try $0.teamInvitation(tenant: globex.id, id: invitations[1].id) }))
    observe("by hash", .invitation(try await store.read { try $0.teamInvitation(tenant: acme.id, tokenHash: hash(1)) }))
    observe("by hash via globex", .invitation(try await store.read { try $0.teamInvitation(tenant: globex.id, tokenHash: hash(1)) }))
    observe("accept via globex", .invitation(try await store.write { try $0.acceptTeamInvitation(tenant: globex.id, tokenHash: hash(1), user: gus.id, at: ms(150)) }))
    observe("accept", .invitation(try await store.write { try $0.acceptTeamInvitation(tenant: acme.id, tokenHash: hash(1), user: carol.id, at: ms(150)) }))
    observe("accept again", .invitation(try await store.write { try $0.acceptTeamInvitation(tenant: acme.id, tokenHash: hash(1), user: carol.id, at: ms(151)) }))
    observe("accept at expiry", .invitation(try await store.write { try $0.acceptTeamInvitation(tenant: acme.id, tokenHash: hash(3), user: carol.id, at: ms(300)) }))
    observe("revoke via globex", .flag(try await store.write { try $0.revokeTeamInvitation(tenant: globex.id, id: invitations[1].id, at: ms(160)) }))
    observe("revoke", .flag(try await store.write { try $0.revokeTeamInvitation(tenant: acme.id, id: invitations[1].id, at: ms(160)) }))
    observe("revoke again", .flag(try await store.write { try $0.revokeTeamInvitation(tenant: acme.id, id: invitations[1].id, at: ms(161)) }))
    observe("revoke accepted", .flag(try await store.write { try $0.revokeTeamInvitation(tenant: acme.id, id: invitations[0].id, at: ms(161)) }))
    observe("accept revoked", .invitation(try await store.write { try $0.acceptTeamInvitation(tenant: acme.id, tokenHash: hash(2), user: carol.id, at: ms(170)) }))
    observe("open after", .invitations(try await store.read { try $0.openTeamInvitations(tenant: acme.id, team: teams[0].id) }))
    observe("revoked", .invitation(try await store.read { try $0.teamInvitation(tenant: acme.id, id: invitations[1].id) }))

    observe("delete via globex", .flag(try await store.write { try $0.deleteTeam(tenant: globex.id, id: teams[0].id) }))
    observe("delete", .flag(try await store.write { try $0.deleteTeam(tenant: acme.id, id: teams[0].id) }))
    observe("delete again", .flag(try await store.write { try $0.deleteTeam(tenant: acme.id, id: teams[0].id) }))
    observe("deleted members", .members(try await store.read { try $0.teamMembers(tenant: acme.id, team: teams[0].id) }))
    observe("deleted invitation", .invitation(try await store.read { try $0.teamInvitation(tenant: acme.id, id: invitations[2].id) }))
    observe("other team's invitation", .invitation(try await store.read { try $0.teamInvitation(tenant: acme.id, id: invitations[3].id) }))
    observe(
        "alice's teams after",
        .memberships(try await store.read { try $0.teamMemberships(tenant: acme.id, user: alice.id, after: nil, limit: 10) }))
    return observations
}
