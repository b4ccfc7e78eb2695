import Foundation
import MoatCore
import MoatStore
import XCTest

// MARK: - Fixtures

/// The payload is the event type's bytes: enough to tell events apart.
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

private func token(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 32) }

/// A tenant whose policy differs from the defaults in every field.
private func makeTenant(_ number: Int, slug: String, name: String = "Tenant", at: Int64 = 1_000) -> Tenant {
    var policy = TenantPolicy()
    policy.minPasswordLength = 12
    policy.sessionIdleTimeoutSeconds = 3_600
    policy.sessionAbsoluteLifetimeSeconds = 86_400
    policy.requireTwoFactor = true
    policy.lockoutThreshold = 3
    policy.lockoutBaseDelaySeconds = 30
    policy.lockoutMaxDelaySeconds = 600
    policy.maxSessionsPerUser = 7
    return Tenant(id: fixedID(TenantID.self, number), slug: slug, name: name, policy: policy, createdAt: ms(at))
}

private func makeUser(_ number: Int, tenant: TenantID, email: String, role: TenantRole = .member, at: Int64 = 2_000)
    -> User
{
    User(
        id: fixedID(UserID.self, number), tenantID: tenant, email: email,
        passwordHash: "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA", role: role, createdAt: ms(at))
}

private func makeSession(_ number: Int, tenant: TenantID, user: UserID, token byte: UInt8, at: Int64) -> Session {
    Session(
        id: fixedID(SessionID.self, number), tenantID: tenant, userID: user, tokenHash: token(byte),
        client: ClientDetails(userAgent: "Firefox/\(number)", ip: "10.0.0.\(number)", location: "Paris", deviceName: "laptop"),
        createdAt: ms(at), lastActiveAt: ms(at + 5), absoluteExpiresAt: ms(at + 86_400_000), idleTimeoutSeconds: 3_600,
        secondFactorSatisfied: number % 2 == 0)
}

private func makeReset(tenant: TenantID, user: UserID, token byte: UInt8, at: Int64, expires: Int64)
    -> PasswordResetToken
{
    PasswordResetToken(tokenHash: token(byte), tenantID: tenant, userID: user, createdAt: ms(at), expiresAt: ms(expires))
}

private func makeLogEntry(tenant: TenantID, user: UserID, kind: SecurityEventKind, detail: String, at: Int64)
    -> SecurityLogEntry
{
    SecurityLogEntry(
        tenantID: tenant, userID: user, kind: kind, ip: "192.0.2.1", userAgent: "curl/8", detail: detail, createdAt: ms(at))
}

private func openStore(_ directory: TemporaryDirectory, readerCount: Int = 2) async throws -> SQLiteAccountStore {
    try await SQLiteAccountStore.open(
        path: directory.path(), readerCount: readerCount, encoder: TypeEventEncoder(), logger: testLogger)
}

/// The error `body` throws, or nil.
private func thrownError(_ body: () async throws -> Void) async -> (any Error)? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}

/// A tenant with one user, the usual starting point.
private func seed(_ store: any AccountStore, tenant: Tenant, user: User) async throws {
    try await store.write { writer in
        try writer.insert(tenant)
        try writer.insert(user)
    }
}

// MARK: - Tests

/// The SQLite account store: schema, round trips, tenant scoping, errors,
/// atomicity, concurrency, durability, and conformance to the in-memory
/// reference.
final class SQLiteAccountStoreTests: XCTestCase {
    // MARK: Schema

    /// From an empty file, the migrations create every table, each carrying
    /// tenant_id (tenants: its id), with cascading references to users.
    func testMigrationsCreateEveryTableWithTenantID() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openStore(directory)
        XCTAssertEqual(store.database.migrationReport.previousVersion, 0)
        XCTAssertEqual(store.database.migrationReport.applied, AccountSchema.migrations.map(\.version))

        let tables = try await store.database.read { connection in
            try connection.query("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'") {
                try $0.string("name")
            }
        }
        XCTAssertEqual(Set(tables), Set(AccountSchema.tables + ["schema_migrations"]))

        // The daemon-wide tables: no tenant_id by design (see AccountSchema).
        for table in tables where !["meta", "schema_migrations", "event_consumers", "address_failures"].contains(table) {
            let columns = try await store.database.read { connection in
                try connection.query("SELECT name FROM pragma_table_info('\(table)')") { try $0.string("name") }
            }
            XCTAssertTrue(columns.contains(table == "tenants" ? "id" : "tenant_id"), "\(table): \(columns)")
            if columns.contains("user_id") {
                let references = try await store.database.read { connection in
                    try connection.query("SELECT \"table\", \"from\", on_delete FROM pragma_foreign_key_list('\(table)')") {
                        "\(try $0.string("table")).\(try $0.string("from")).\(try $0.string("on_delete"))"
                    }
                }
                // Team tables also reference their team; every user reference cascades.
                XCTAssertTrue(
                    Set(references).isSuperset(of: ["users.tenant_id.CASCADE", "users.user_id.CASCADE"]),
                    "\(table): \(references)")
                XCTAssertEqual(references.filter { $0.hasPrefix("users.") && !$0.hasSuffix(".CASCADE") }, [], table)
            }
        }
        await store.close()

        let reopened = try await openStore(directory)
        XCTAssertEqual(reopened.database.migrationReport.applied, [])
        XCTAssertEqual(reopened.database.migrationReport.currentVersion, AccountSchema.migrations.last?.version)
        await reopened.close()
    }

    // MARK: Round trips

    func testTenantsRoundTripInSlugOrder() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let beta = makeTenant(1, slug: "beta")
            let alpha = makeTenant(2, slug: "alpha")
            let gamma = makeTenant(3, slug: "gamma")
            try await store.write { writer in
                for tenant in [beta, alpha, gamma] { try writer.insert(tenant) }
            }
            let (byID, bySlug, firstPage, secondPage, absent) = try await store.read { reader in
                (
                    try reader.tenant(id: beta.id), try reader.tenant(slug: "gamma"),
                    try reader.tenants(afterSlug: nil, limit: 2), try reader.tenants(afterSlug: "alpha", limit: 10),
                    try reader.tenant(slug: "delta")
                )
            }
            XCTAssertEqual(byID, beta)
            XCTAssertEqual(bySlug, gamma)
            XCTAssertEqual(firstPage, [alpha, beta])
            XCTAssertEqual(secondPage, [beta, gamma])
            XCTAssertNil(absent)

            var renamed = beta
            renamed.name = "Beta Corp"
            renamed.slug = "beta-corp"
            renamed.policy = TenantPolicy()
            try await store.write { [renamed] in try $0.update(renamed) }
            let missing = makeTenant(9, slug: "missing")
            try await store.write { try $0.update(missing) }  // not there: no effect
            let (updated, oldSlug, all) = try await store.read { reader in
                (try reader.tenant(id: beta.id), try reader.tenant(slug: "beta"), try reader.tenants(afterSlug: nil, limit: 10))
            }
            XCTAssertEqual(updated, renamed)
            XCTAssertNil(oldSlug)
            XCTAssertEqual(all.map(\.slug), ["alpha", "beta-corp", "gamma"])
            await store.close()
        }
    }

    func testUsersRoundTripInEmailOrder() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let tenant = makeTenant(1, slug: "acme")
            var carol = makeUser(1, tenant: tenant.id, email: "carol@example.com", role: .owner)
            carol.status = .disabled
            carol.passwordChangedAt = ms(2_500)
            carol.failedSignIns = 3
            carol.lockedUntil = ms(9_000)
            carol.twoFactorEnabled = true
            let carolCopy = carol
            let alice = makeUser(2, tenant: tenant.id, email: "alice@example.com", role: .admin)
            let bob = makeUser(3, tenant: tenant.id, email: "bob@example.com")
            try await store.write { writer in
                try writer.insert(tenant)
                for user in [carolCopy, alice, bob] { try writer.insert(user) }
            }
            let (byID, byEmail, page, after, absent) = try await store.read { reader in
                (
                    try reader.user(tenant: tenant.id, id: carolCopy.id),
                    try reader.user(tenant: tenant.id, email: "alice@example.com"),
                    try reader.users(tenant: tenant.id, afterEmail: nil, limit: 2),
                    try reader.users(tenant: tenant.id, afterEmail: "alice@example.com", limit: 10),
                    try reader.user(tenant: tenant.id, email: "dave@example.com")
                )
            }
            XCTAssertEqual(byID, carol)
            XCTAssertEqual(byEmail, alice)
            XCTAssertEqual(page, [alice, bob])
            XCTAssertEqual(after, [bob, carol])
            XCTAssertNil(absent)

            var changed = carol
            changed.email = "carol.new@example.com"
            changed.passwordHash = "$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3"
            changed.role = .member
            changed.status = .pendingDeletion
            changed.passwordChangedAt = ms(3_000)
            changed.failedSignIns = 0
            changed.lockedUntil = nil
            changed.twoFactorEnabled = false
            try await store.write { [changed] in try $0.update(changed) }
            let (reread, oldEmail) = try await store.read { reader in
                (try reader.user(tenant: tenant.id, id: carolCopy.id), try reader.user(tenant: tenant.id, email: "carol@example.com"))
            }
            XCTAssertEqual(reread, changed)
            XCTAssertNil(oldEmail)
            await store.close()
        }
    }

    func testSessionsRoundTripAndRevocation() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let tenant = makeTenant(1, slug: "acme")
            let user = makeUser(1, tenant: tenant.id, email: "a@example.com")
            try await seed(store, tenant: tenant, user: user)
            let sessions = (1...4).map { makeSession($0, tenant: tenant.id, user: user.id, token: UInt8($0), at: Int64(50 - $0)) }
            try await store.write { writer in
                for session in sessions { try writer.insert(session) }
            }
            let (byHash, byID, live, unknown) = try await store.read { reader in
                (
                    try reader.session(tenant: tenant.id, tokenHash: token(2)), try reader.session(tenant: tenant.id, id: sessions[0].id),
                    try reader.sessions(tenant: tenant.id, user: user.id), try reader.session(tenant: tenant.id, tokenHash: token(99))
                )
            }
            XCTAssertEqual(byHash, sessions[1])
            XCTAssertEqual(byID, sessions[0])
            XCTAssertEqual(live, Array(sessions.reversed()), "ordered by creation")
            XCTAssertNil(unknown)

            let (first, second, missing) = try await store.write { writer in
                (
                    try writer.revokeSession(tenant: tenant.id, id: sessions[1].id, at: ms(100), reason: "signed_out"),
                    try writer.revokeSession(tenant: tenant.id, id: sessions[1].id, at: ms(200), reason: "again"),
                    try writer.revokeSession(tenant: tenant.id, id: fixedID(SessionID.self, 99), at: ms(200), reason: "none")
                )
            }
            XCTAssertTrue(first)
            XCTAssertFalse(second, "a revoked session is not live")
            XCTAssertFalse(missing)
            let revoked = try await store.read { try $0.session(tenant: tenant.id, id: sessions[1].id) }
            XCTAssertEqual(revoked?.revokedAt, ms(100))
            XCTAssertEqual(revoked?.revokeReason, "signed_out")

            let (others, nothingLeft) = try await store.write { writer in
                (
                    try writer.revokeSessions(tenant: tenant.id, user: user.id, except: sessions[2].id, at: ms(300), reason: "others"),
                    try writer.revokeSessions(tenant: tenant.id, user: user.id, except: sessions[2].id, at: ms(400), reason: "others")
                )
            }
            XCTAssertEqual(others, [sessions[0].id, sessions[3].id])
            XCTAssertEqual(nothingLeft, [])
            let (remaining, firstAfter) = try await store.read { reader in
                (try reader.sessions(tenant: tenant.id, user: user.id), try reader.session(tenant: tenant.id, id: sessions[0].id))
            }
            XCTAssertEqual(remaining, [sessions[2]])
            XCTAssertEqual(firstAfter?.revokedAt, ms(300))
            XCTAssertEqual(firstAfter?.revokeReason, "others")

            let all = try await store.write { writer in
                try writer.revokeSessions(tenant: tenant.id, user: user.id, except: nil, at: ms(500), reason: "all")
            }
            XCTAssertEqual(all, [sessions[2].id])
            await store.close()
        }
    }

    func testPasswordResetsRoundTripSingleUseAndExpiry() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let tenant = makeTenant(1, slug: "acme")
            let user = makeUser(1, tenant: tenant.id, email: "a@example.com")
            try await seed(store, tenant: tenant, user: user)
            let live = makeReset(tenant: tenant.id, user: user.id, token: 1, at: 1_000, expires: 5_000)
            let expiring = makeReset(tenant: tenant.id, user: user.id, token: 2, at: 1_000, expires: 2_000)
            try await store.write { writer in
                try writer.insert(live)
                try writer.insert(expiring)
            }
            let stored = try await store.read { try $0.passwordReset(tenant: tenant.id, tokenHash: token(1)) }
            XCTAssertEqual(stored, live)

            let (used, reused, expired) = try await store.write { writer in
                (
                    try writer.consumePasswordReset(tenant: tenant.id, tokenHash: token(1), at: ms(4_999)),
                    try writer.consumePasswordReset(tenant: tenant.id, tokenHash: token(1), at: ms(4_999)),
                    try writer.consumePasswordReset(tenant: tenant.id, tokenHash: token(2), at: ms(2_000))
                )
            }
            var expected = live
            expected.usedAt = ms(4_999)
            XCTAssertEqual(used, expected)
            XCTAssertNil(reused, "one token, one use")
            XCTAssertNil(expired, "refused at its expiry time")
            let (afterUse, afterRefusal, unknown) = try await store.read { reader in
                (
                    try reader.passwordReset(tenant: tenant.id, tokenHash: token(1)),
                    try reader.passwordReset(tenant: tenant.id, tokenHash: token(2)),
                    try reader.passwordReset(tenant: tenant.id, tokenHash: token(3))
                )
            }
            XCTAssertEqual(afterUse, expected)
            XCTAssertEqual(afterRefusal, expiring, "a refused token stays unused")
            XCTAssertNil(unknown)
            await store.close()
        }
    }

    func testEventsAndSecurityLogRoundTrip() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let tenant = makeTenant(1, slug: "acme")
            let user = makeUser(1, tenant: tenant.id, email: "a@example.com")
            let other = makeUser(2, tenant: tenant.id, email: "b@example.com")
            try await seed(store, tenant: tenant, user: user)
            let events: [DomainEvent] = [
                .userCreated(userID: other.id, email: other.email, role: .member),
                .userDisabled(userID: other.id, email: other.email),
                .passwordResetUnknownEmail(email: "nobody@example.com", ip: "192.0.2.9"),
            ]
            try await store.write { writer in
                try writer.insert(other)
                for (offset, event) in events.enumerated() { try writer.append(event, tenant: tenant.id, at: ms(10 + Int64(offset))) }
                for (offset, kind) in [SecurityEventKind.signInFailed, .signInSucceeded, .passwordChanged].enumerated() {
                    try writer.append(makeLogEntry(tenant: tenant.id, user: user.id, kind: kind, detail: "#\(offset)", at: 20 + Int64(offset)))
                }
                try writer.append(makeLogEntry(tenant: tenant.id, user: other.id, kind: .userDisabled, detail: "other", at: 30))
            }
            let (all, page, log, older, otherLog) = try await store.read { reader in
                (
                    try reader.events(after: 0, limit: 10), try reader.events(after: 1, limit: 1),
                    try reader.securityLog(tenant: tenant.id, user: user.id, beforeID: nil, limit: 10),
                    try reader.securityLog(tenant: tenant.id, user: user.id, beforeID: 3, limit: 1),
                    try reader.securityLog(tenant: tenant.id, user: other.id, beforeID: nil, limit: 10)
                )
            }
            XCTAssertEqual(
                all,
                events.enumerated().map { offset, event in
                    EventRecord(
                        sequence: Int64(offset + 1), tenantID: tenant.id, type: event.type, subject: event.subject,
                        payload: Array(event.type.utf8), createdAt: ms(10 + Int64(offset)))
                })
            XCTAssertEqual(page.map(\.sequence), [2])
            XCTAssertEqual(log.map(\.id), [3, 2, 1], "newest first")
            XCTAssertEqual(log.map(\.kind), [.passwordChanged, .signInSucceeded, .signInFailed])
            XCTAssertEqual(
                log.last,
                SecurityLogEntry(
                    id: 1, tenantID: tenant.id, userID: user.id, kind: .signInFailed, ip: "192.0.2.1", userAgent: "curl/8",
                    detail: "#0", createdAt: ms(20)))
            XCTAssertEqual(older.map(\.id), [2])
            XCTAssertEqual(otherLog.map(\.detail), ["other"])
            await store.close()
        }
    }

    // MARK: Tenant scoping

    /// Tenant A's rows are invisible and unchangeable through tenant B, by
    /// every method that takes a tenant.
    func testEveryMethodIsScopedByTenant() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let tenantA = makeTenant(1, slug: "tenant-a")
            let tenantB = makeTenant(2, slug: "tenant-b")
            let userA = makeUser(1, tenant: tenantA.id, email: "same@example.com")
            let userB = makeUser(2, tenant: tenantB.id, email: "b@example.com")
            let sessionA = makeSession(1, tenant: tenantA.id, user: userA.id, token: 1, at: 10)
            let resetA = makeReset(tenant: tenantA.id, user: userA.id, token: 2, at: 10, expires: 10_000)
            try await store.write { writer in
                try writer.insert(tenantA)
                try writer.insert(tenantB)
                try writer.insert(userA)
                try writer.insert(userB)
                try writer.insert(sessionA)
                try writer.insert(resetA)
                try writer.append(makeLogEntry(tenant: tenantA.id, user: userA.id, kind: .signInSucceeded, detail: "a", at: 10))
            }

            let seen = try await store.read { reader in
                [
                    try reader.user(tenant: tenantB.id, id: userA.id) != nil,
                    try reader.user(tenant: tenantB.id, email: userA.email) != nil,
                    try !reader.users(tenant: tenantB.id, afterEmail: nil, limit: 10).filter { $0.id == userA.id }.isEmpty,
                    try reader.session(tenant: tenantB.id, tokenHash: sessionA.tokenHash) != nil,
                    try reader.session(tenant: tenantB.id, id: sessionA.id) != nil,
                    try !reader.sessions(tenant: tenantB.id, user: userA.id).isEmpty,
                    try reader.passwordReset(tenant: tenantB.id, tokenHash: resetA.tokenHash) != nil,
                    try !reader.securityLog(tenant: tenantB.id, user: userA.id, beforeID: nil, limit: 10).isEmpty,
                ]
            }
            XCTAssertEqual(seen, Array(repeating: false, count: seen.count), "tenant B saw tenant A's rows: \(seen)")

            var hijacked = userA
            hijacked.tenantID = tenantB.id
            hijacked.role = .owner
            hijacked.passwordHash = "attacker"
            let (revokedOne, revokedAll, consumed) = try await store.write { [hijacked] writer in
                try writer.update(hijacked)
                return (
                    try writer.revokeSession(tenant: tenantB.id, id: sessionA.id, at: ms(20), reason: "x"),
                    try writer.revokeSessions(tenant: tenantB.id, user: userA.id, except: nil, at: ms(20), reason: "x"),
                    try writer.consumePasswordReset(tenant: tenantB.id, tokenHash: resetA.tokenHash, at: ms(20))
                )
            }
            XCTAssertFalse(revokedOne)
            XCTAssertEqual(revokedAll, [])
            XCTAssertNil(consumed)

            // Tenant A's rows are untouched.
            let (user, session, reset, log) = try await store.read { reader in
                (
                    try reader.user(tenant: tenantA.id, id: userA.id), try reader.session(tenant: tenantA.id, id: sessionA.id),
                    try reader.passwordReset(tenant: tenantA.id, tokenHash: resetA.tokenHash),
                    try reader.securityLog(tenant: tenantA.id, user: userA.id, beforeID: nil, limit: 10)
                )
            }
            XCTAssertEqual(user, userA)
            XCTAssertEqual(session, sessionA)
            XCTAssertEqual(reset, resetA)
            XCTAssertEqual(log.map(\.detail), ["a"])
            let consumedByOwner = try await store.write {
                try $0.consumePasswordReset(tenant: tenantA.id, tokenHash: resetA.tokenHash, at: ms(20))
            }
            XCTAssertNotNil(consumedByOwner)

            // The same email is free in another tenant.
            let twin = makeUser(3, tenant: tenantB.id, email: userA.email)
            try await store.write { try $0.insert(twin) }
            let found = try await store.read { try $0.user(tenant: tenantB.id, email: userA.email) }
            XCTAssertEqual(found, twin)
            await store.close()
        }
    }

    /// The schema refuses rows pointing at another tenant's user (or at no
    /// user), and deleting a tenant takes its users' rows but not the outbox.
    func testSchemaRefusesCrossTenantReferencesAndCascades() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openStore(directory)
        let tenantA = makeTenant(1, slug: "tenant-a")
        let tenantB = makeTenant(2, slug: "tenant-b")
        let userA = makeUser(1, tenant: tenantA.id, email: "a@example.com")
        try await seed(store, tenant: tenantA, user: userA)
        try await store.write { try $0.insert(tenantB) }

        let crossSession = await thrownError {
            try await store.write { try $0.insert(makeSession(1, tenant: tenantB.id, user: userA.id, token: 1, at: 1)) }
        }
        XCTAssertEqual((crossSession as? StoreError)?.reason, .constraintForeignKey, "\(String(describing: crossSession))")
        let crossLog = await thrownError {
            try await store.write {
                try $0.append(makeLogEntry(tenant: tenantB.id, user: userA.id, kind: .signInFailed, detail: "", at: 1))
            }
        }
        XCTAssertEqual((crossLog as? StoreError)?.reason, .constraintForeignKey)
        let crossReset = await thrownError {
            try await store.write { try $0.insert(makeReset(tenant: tenantB.id, user: userA.id, token: 2, at: 1, expires: 9)) }
        }
        XCTAssertEqual((crossReset as? StoreError)?.reason, .constraintForeignKey)
        let orphan = await thrownError {
            try await store.write { try $0.insert(makeUser(5, tenant: fixedID(TenantID.self, 77), email: "x@example.com")) }
        }
        XCTAssertEqual((orphan as? StoreError)?.reason, .constraintForeignKey)

        try await store.write { writer in
            try writer.insert(makeSession(1, tenant: tenantA.id, user: userA.id, token: 1, at: 1))
            try writer.insert(makeReset(tenant: tenantA.id, user: userA.id, token: 2, at: 1, expires: 9))
            try writer.append(makeLogEntry(tenant: tenantA.id, user: userA.id, kind: .signInFailed, detail: "", at: 1))
            try writer.append(.tenantPolicyUpdated(tenantID: tenantA.id), tenant: tenantA.id, at: ms(1))
        }
        try await store.database.write { transaction in
            try transaction.execute("DELETE FROM tenants WHERE id = ?", [tenantA.id.rawValue])
        }
        for table in ["users", "sessions", "password_resets", "security_log"] {
            let rows = try await count(table, in: store.database)
            XCTAssertEqual(rows, 0, table)
        }
        let events = try await count("events", in: store.database)
        XCTAssertEqual(events, 1, "the outbox outlives the rows it reports on")
        await store.close()
    }

    // MARK: Errors and atomicity

    func testDuplicateSlugAndEmailAreDomainErrors() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let tenant = makeTenant(1, slug: "acme")
            let other = makeTenant(2, slug: "other")
            let alice = makeUser(1, tenant: tenant.id, email: "alice@example.com")
            let bob = makeUser(2, tenant: tenant.id, email: "bob@example.com")
            try await store.write { writer in
                try writer.insert(tenant)
                try writer.insert(other)
                try writer.insert(alice)
                try writer.insert(bob)
            }

            let slugInsert = await thrownError { try await store.write { try $0.insert(makeTenant(3, slug: "acme")) } }
            XCTAssertEqual(slugInsert as? DomainError, .slugTaken)
            var renamed = other
            renamed.slug = "acme"
            let slugUpdate = await thrownError { try await store.write { [renamed] in try $0.update(renamed) } }
            XCTAssertEqual(slugUpdate as? DomainError, .slugTaken)

            let emailInsert = await thrownError {
                try await store.write { try $0.insert(makeUser(3, tenant: tenant.id, email: "alice@example.com")) }
            }
            XCTAssertEqual(emailInsert as? DomainError, .emailTaken)
            var moved = bob
            moved.email = "alice@example.com"
            let emailUpdate = await thrownError { try await store.write { [moved] in try $0.update(moved) } }
            XCTAssertEqual(emailUpdate as? DomainError, .emailTaken)

            // Other UNIQUE violations are not mapped.
            let duplicateID = await thrownError {
                try await store.write { try $0.insert(makeUser(1, tenant: tenant.id, email: "carol@example.com")) }
            }
            XCTAssertEqual((duplicateID as? StoreError)?.reason, .constraintUnique)
            try await store.write { try $0.insert(makeSession(1, tenant: tenant.id, user: alice.id, token: 1, at: 1)) }
            let duplicateToken = await thrownError {
                try await store.write { try $0.insert(makeSession(2, tenant: tenant.id, user: alice.id, token: 1, at: 1)) }
            }
            XCTAssertEqual((duplicateToken as? StoreError)?.reason, .constraintUnique)

            // A body that catches the domain error goes on; its other work commits.
            let recovered = try await store.write { writer -> Bool in
                try writer.insert(makeUser(4, tenant: tenant.id, email: "dave@example.com"))
                do {
                    try writer.insert(makeUser(5, tenant: tenant.id, email: "bob@example.com"))
                    return false
                } catch let error as DomainError where error == .emailTaken {
                    try writer.insert(makeUser(5, tenant: tenant.id, email: "bob2@example.com"))
                    return true
                }
            }
            XCTAssertTrue(recovered)
            let emails = try await store.read { try $0.users(tenant: tenant.id, afterEmail: nil, limit: 10).map(\.email) }
            XCTAssertEqual(emails, ["alice@example.com", "bob2@example.com", "bob@example.com", "dave@example.com"])
            await store.close()
        }
    }

    /// A throwing body leaves nothing behind, and its error (a DomainError
    /// included) reaches the caller unchanged.
    func testThrowingWriteLeavesNothingBehind() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let tenant = makeTenant(1, slug: "acme")
            try await store.write { try $0.insert(tenant) }
            let user = makeUser(1, tenant: tenant.id, email: "a@example.com")

            let intentional = await thrownError {
                try await store.write { writer in
                    try writer.insert(user)
                    try writer.append(.userCreated(userID: user.id, email: user.email, role: .member), tenant: tenant.id, at: ms(1))
                    throw IntentionalError()
                }
            }
            XCTAssertEqual(intentional as? IntentionalError, IntentionalError())
            let rule = DomainError(.failedPrecondition, .lastOwner, "a rule said no", details: ["k": "v"])
            let domain = await thrownError {
                try await store.write { writer in
                    try writer.insert(user)
                    try writer.append(.userCreated(userID: user.id, email: user.email, role: .member), tenant: tenant.id, at: ms(1))
                    try writer.append(makeLogEntry(tenant: tenant.id, user: user.id, kind: .signInSucceeded, detail: "", at: 1))
                    throw rule
                }
            }
            XCTAssertEqual(domain as? DomainError, rule)
            let (found, events, log) = try await store.read { reader in
                (
                    try reader.user(tenant: tenant.id, id: user.id), try reader.events(after: 0, limit: 10),
                    try reader.securityLog(tenant: tenant.id, user: user.id, beforeID: nil, limit: 10)
                )
            }
            XCTAssertNil(found)
            XCTAssertEqual(events, [])
            XCTAssertEqual(log, [])

            // Concurrent writes batched together: the throwing ones alone are lost.
            let results = await withTaskGroup(of: (Int, Bool).self) { group in
                for number in 0..<20 {
                    group.addTask {
                        let error = await thrownError {
                            try await store.write { writer in
                                try writer.insert(makeUser(100 + number, tenant: tenant.id, email: "u\(number)@example.com"))
                                if number % 2 == 1 { throw IntentionalError() }
                            }
                        }
                        return (number, error == nil)
                    }
                }
                return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
            }
            XCTAssertEqual(results.filter(\.value).keys.sorted(), Array(stride(from: 0, to: 20, by: 2)))
            let emails = try await store.read { try Set($0.users(tenant: tenant.id, afterEmail: nil, limit: 100).map(\.email)) }
            XCTAssertEqual(emails, Set(stride(from: 0, to: 20, by: 2).map { "u\($0)@example.com" }))
            await store.close()
        }
    }

    /// Rows the model cannot hold fail with INVALID_ROW instead of trapping.
    func testUndecodableRowsThrowInvalidRow() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openStore(directory)
        let tenant = makeTenant(1, slug: "acme")
        let user = makeUser(1, tenant: tenant.id, email: "a@example.com")
        try await seed(store, tenant: tenant, user: user)
        let badTenant = makeTenant(2, slug: "bad")
        try await store.write { try $0.insert(badTenant) }
        try await store.database.write { transaction in
            try transaction.execute(
                """
                INSERT INTO users (id, tenant_id, email, password_hash, role, status, created_at, password_changed_at,
                    failed_sign_ins, locked_until, two_factor_enabled)
                VALUES ('bogus', ?, 'x@example.com', 'h', 'member', 'active', 1, 1, 0, NULL, 0),
                       (?, ?, 'y@example.com', 'h', 'emperor', 'active', 1, 1, 0, NULL, 0)
                """,
                [badTenant.id.rawValue, fixedID(UserID.self, 50).rawValue, badTenant.id.rawValue])
            try transaction.execute(
                """
                INSERT INTO security_log (tenant_id, user_id, kind, ip, user_agent, detail, created_at)
                VALUES (?, ?, 'sign_in.teleported', '', '', '', 1)
                """,
                [tenant.id.rawValue, user.id.rawValue])
        }
        let badID = await thrownError { _ = try await store.read { try $0.user(tenant: badTenant.id, email: "x@example.com") } }
        XCTAssertEqual((badID as? StoreError)?.reason, .invalidRow)
        XCTAssertTrue((badID as? StoreError)?.message.contains("users.id") ?? false, "\(String(describing: badID))")
        let badRole = await thrownError {
            _ = try await store.read { try $0.user(tenant: badTenant.id, id: fixedID(UserID.self, 50)) }
        }
        XCTAssertEqual((badRole as? StoreError)?.reason, .invalidRow)
        XCTAssertTrue((badRole as? StoreError)?.message.contains("emperor") ?? false)
        let badKind = await thrownError {
            _ = try await store.read { try $0.securityLog(tenant: tenant.id, user: user.id, beforeID: nil, limit: 10) }
        }
        XCTAssertEqual((badKind as? StoreError)?.reason, .invalidRow)
        // The healthy rows are still readable.
        let healthy = try await store.read { try $0.user(tenant: tenant.id, id: user.id) }
        XCTAssertEqual(healthy, user)
        await store.close()
    }

    // MARK: Concurrency

    /// 100 concurrent writers each append one event: sequences are 1...100,
    /// distinct, and a consumer polling meanwhile sees them in order with no
    /// gap filled later (sequence order is commit order). Sequences are
    /// never reused, even after the newest event is deleted or the store reopens.
    func testEventSequenceIncreasesInCommitOrder() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openStore(directory)
        let tenant = makeTenant(1, slug: "acme")
        try await store.write { try $0.insert(tenant) }
        let writers = 100

        let poller = Task { () -> [Int64] in
            var seen: [Int64] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while seen.count < writers, ContinuousClock.now < deadline {
                let cursor = seen.last ?? 0
                let observed = store.eventSignal.generation
                let page = try await store.read { try $0.events(after: cursor, limit: 1000) }
                seen += page.map(\.sequence)
                // Nothing new: wait for the next commit that appended.
                if page.isEmpty { _ = await store.eventSignal.wait(since: observed, timeout: deadline - ContinuousClock.now) }
            }
            return seen
        }
        let assigned = try await withThrowingTaskGroup(of: Int64.self) { group in
            for number in 0..<writers {
                group.addTask {
                    try await store.write { writer -> Int64 in
                        try writer.append(.tenantPolicyUpdated(tenantID: tenant.id), tenant: tenant.id, at: ms(Int64(number)))
                        return try writer.events(after: 0, limit: 1000).last?.sequence ?? -1
                    }
                }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        XCTAssertEqual(assigned.sorted(), Array(1...Int64(writers)), "distinct, 1...\(writers)")
        let polled = try await poller.value
        XCTAssertEqual(polled, Array(1...Int64(writers)), "the consumer saw every event, in order")

        // Rolled back: the number goes to the next committed event.
        _ = await thrownError {
            try await store.write { writer in
                try writer.append(.tenantPolicyUpdated(tenantID: tenant.id), tenant: tenant.id, at: ms(1))
                throw IntentionalError()
            }
        }
        try await store.write { try $0.append(.tenantPolicyUpdated(tenantID: tenant.id), tenant: tenant.id, at: ms(2)) }
        try await store.database.write { transaction in
            try transaction.execute("DELETE FROM events WHERE sequence = ?", [Int64(writers + 1)])
        }
        await store.close()
        let reopened = try await openStore(directory)
        try await reopened.write { try $0.append(.tenantPolicyUpdated(tenantID: tenant.id), tenant: tenant.id, at: ms(3)) }
        let last = try await reopened.read { try $0.events(after: Int64(writers), limit: 10).map(\.sequence) }
        XCTAssertEqual(last, [Int64(writers + 2)], "never reused")
        await reopened.close()
    }

    /// 20 concurrent attempts on one reset token: exactly one wins.
    func testConsumePasswordResetIsSingleUseUnderConcurrency() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let tenant = makeTenant(1, slug: "acme")
            let user = makeUser(1, tenant: tenant.id, email: "a@example.com")
            try await seed(store, tenant: tenant, user: user)
            let reset = makeReset(tenant: tenant.id, user: user.id, token: 7, at: 0, expires: 3_600_000)
            try await store.write { try $0.insert(reset) }
            let winners = try await withThrowingTaskGroup(of: Timestamp?.self) { group in
                for attempt in 0..<20 {
                    group.addTask {
                        try await store.write { writer in
                            try writer.consumePasswordReset(tenant: tenant.id, tokenHash: reset.tokenHash, at: ms(1_000 + Int64(attempt)))
                        }?.usedAt
                    }
                }
                return try await group.reduce(into: [Timestamp]()) { if let usedAt = $1 { $0.append(usedAt) } }
            }
            XCTAssertEqual(winners.count, 1, "exactly one attempt wins")
            let stored = try await store.read { try $0.passwordReset(tenant: tenant.id, tokenHash: reset.tokenHash) }
            XCTAssertEqual(stored?.usedAt, winners.first)

            let late = makeReset(tenant: tenant.id, user: user.id, token: 8, at: 0, expires: 1_000)
            try await store.write { try $0.insert(late) }
            let refused = try await store.write { try $0.consumePasswordReset(tenant: tenant.id, tokenHash: late.tokenHash, at: ms(1_001)) }
            XCTAssertNil(refused, "expired")
            await store.close()
        }
    }

    // MARK: Durability and meta

    func testReopenAfterCloseKeepsData() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tenant = makeTenant(1, slug: "acme")
        let user = makeUser(1, tenant: tenant.id, email: "a@example.com")
        let session = makeSession(1, tenant: tenant.id, user: user.id, token: 1, at: 10)
        let reset = makeReset(tenant: tenant.id, user: user.id, token: 2, at: 10, expires: 99)
        let store = try await openStore(directory)
        try await store.write { writer in
            try writer.insert(tenant)
            try writer.insert(user)
            try writer.insert(session)
            try writer.insert(reset)
            try writer.append(.userCreated(userID: user.id, email: user.email, role: .member), tenant: tenant.id, at: ms(10))
            try writer.append(makeLogEntry(tenant: tenant.id, user: user.id, kind: .signInSucceeded, detail: "d", at: 10))
        }
        try await store.setMeta("key_fingerprint", [1, 2, 3])
        await store.close()
        let closed = await thrownError { _ = try await store.read { try $0.tenant(id: tenant.id) } }
        XCTAssertEqual((closed as? StoreError)?.reason, .closed)

        let reopened = try await openStore(directory)
        let (t, u, s, r, e, l) = try await reopened.read { reader in
            (
                try reader.tenant(id: tenant.id), try reader.user(tenant: tenant.id, id: user.id),
                try reader.session(tenant: tenant.id, id: session.id),
                try reader.passwordReset(tenant: tenant.id, tokenHash: reset.tokenHash), try reader.events(after: 0, limit: 10),
                try reader.securityLog(tenant: tenant.id, user: user.id, beforeID: nil, limit: 10)
            )
        }
        XCTAssertEqual(t, tenant)
        XCTAssertEqual(u, user)
        XCTAssertEqual(s, session)
        XCTAssertEqual(r, reset)
        XCTAssertEqual(e.map(\.type), ["user.created"])
        XCTAssertEqual(l.map(\.detail), ["d"])
        let fingerprint = try await reopened.meta("key_fingerprint")
        XCTAssertEqual(fingerprint, [1, 2, 3])
        await reopened.close()
    }

    func testMetaGetAndSet() async throws {
        try await onEachSQLStore(encoder: TypeEventEncoder()) { store, backend in
            let missing = try await store.meta("absent")
            XCTAssertNil(missing)
            try await store.setMeta("fingerprint", [0, 255, 0, 7])
            try await store.setMeta("empty", [])
            let first = try await store.meta("fingerprint")
            XCTAssertEqual(first, [0, 255, 0, 7])
            try await store.setMeta("fingerprint", [9])
            let (replaced, empty) = (try await store.meta("fingerprint"), try await store.meta("empty"))
            XCTAssertEqual(replaced, [9])
            XCTAssertEqual(empty, [])
            await store.close()
        }
    }

    // MARK: Conformance

    /// The same scenario on the reference store and on SQLite gives the same
    /// observations, step by step.
    func testConformanceWithMemoryStore() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let memory = try await runConformanceScenario(MemoryAccountStore(encoder: TypeEventEncoder()))
        let store = try await openStore(directory)
        let sqlite = try await runConformanceScenario(store)
        await store.close()
        XCTAssertEqual(memory.count, sqlite.count)
        for (reference, observed) in zip(memory, sqlite) {
            XCTAssertEqual(reference, observed, reference.label)
        }
        XCTAssertGreaterThan(memory.count, 30)
    }

    /// The same scenario on PostgreSQL gives the reference's observations.
    /// Security-log ids are compared by rank: a PostgreSQL identity value
    /// is not transactional, so the rolled-back write leaves a gap (paging
    /// depends only on the order).
    func testPostgresConformsToTheMemoryStore() async throws {
        let schema = try await PostgresTestSchema.create()
        let memory = normalizingLogIDs(try await runConformanceScenario(MemoryAccountStore(encoder: TypeEventEncoder())))
        let store = try await schema.openStore(encoder: TypeEventEncoder())
        let postgres = normalizingLogIDs(try await runConformanceScenario(store))
        await store.close()
        await schema.drop()
        XCTAssertEqual(memory.count, postgres.count)
        for (reference, observed) in zip(memory, postgres) {
            XCTAssertEqual(reference, observed, reference.label)
        }
        XCTAssertGreaterThan(memory.count, 30)
    }
}

/// The observations with every security-log id replaced by its rank among
/// all ids observed.
private func normalizingLogIDs(_ observations: [Observation]) -> [Observation] {
    var ids = Set<Int64>()
    for observation in observations {
        if case .log(let entries) = observation.value { ids.formUnion(entries.map(\.id)) }
    }
    let rank = Dictionary(uniqueKeysWithValues: ids.sorted().enumerated().map { ($1, Int64($0 + 1)) })
    return observations.map { observation in
        guard case .log(let entries) = observation.value else { return observation }
        var copy = observation
        copy.value = .log(entries.map { entry in
            var entry = entry
            entry.id = rank[entry.id] ?? entry.id
            return entry
        })
        return copy
    }
}

// MARK: - Conformance scenario

/// One observation of the scenario.
private struct Observation: Equatable {
    enum Value: Equatable {
        case tenant(Tenant?), tenants([Tenant])
        case user(User?), users([User])
        case session(Session?), sessions([Session]), revoked(Bool), revokedIDs([SessionID])
        case forValidate(SessionWithUserFacts?)
        case reset(PasswordResetToken?)
        case events([EventRecord]), log([SecurityLogEntry])
        /// Completed, or the error it threw: a DomainError's reason, else the type.
        case outcome(String)
    }

    var label: String
    var value: Value
}

/// A behavioural scenario over any store; returns what it observed.
private func runConformanceScenario(_ store: any AccountStore) async throws -> [Observation] {
    var observations: [Observation] = []
    func observe(_ label: String, _ value: Observation.Value) { observations.append(Observation(label: label, value: value)) }
    func attempt(_ label: String, _ body: () async throws -> Void) async {
        var outcome = "ok"
        if let error = await thrownError(body) {
            outcome = (error as? DomainError)?.reason ?? String(describing: type(of: error))
        }
        observe(label, .outcome(outcome))
    }

    let beta = makeTenant(1, slug: "beta")
    let alpha = makeTenant(2, slug: "alpha")
    let gamma = makeTenant(3, slug: "gamma")
    await attempt("insert tenants") {
        try await store.write { writer in
            for tenant in [beta, alpha, gamma] { try writer.insert(tenant) }
        }
    }
    await attempt("duplicate slug") { try await store.write { try $0.insert(makeTenant(4, slug: "beta")) } }
    var policyChanged = beta
    policyChanged.policy.maxSessionsPerUser = 2
    policyChanged.name = "Beta 2"
    await attempt("update tenant") { try await store.write { [policyChanged] in try $0.update(policyChanged) } }
    await attempt("update missing tenant") { try await store.write { try $0.update(makeTenant(5, slug: "epsilon")) } }
    observe("tenant by id", .tenant(try await store.read { try $0.tenant(id: beta.id) }))
    observe("tenant by slug", .tenant(try await store.read { try $0.tenant(slug: "gamma") }))
    observe("missing tenant", .tenant(try await store.read { try $0.tenant(slug: "epsilon") }))
    observe("tenants page 1", .tenants(try await store.read { try $0.tenants(afterSlug: nil, limit: 2) }))
    observe("tenants page 2", .tenants(try await store.read { try $0.tenants(afterSlug: "beta", limit: 2) }))
    observe("tenants limit 0", .tenants(try await store.read { try $0.tenants(afterSlug: nil, limit: 0) }))

    let t1 = beta.id
    let t2 = alpha.id
    let carol = makeUser(1, tenant: t1, email: "carol@example.com", role: .owner)
    let alice = makeUser(2, tenant: t1, email: "alice@example.com")
    let bob = makeUser(3, tenant: t1, email: "bob@example.com", role: .admin)
    let aliceElsewhere = makeUser(4, tenant: t2, email: "alice@example.com")
    await attempt("insert users") {
        try await store.write { writer in
            for user in [carol, alice, bob, aliceElsewhere] { try writer.insert(user) }
        }
    }
    await attempt("duplicate email") { try await store.write { try $0.insert(makeUser(5, tenant: t1, email: "bob@example.com")) } }
    var aliceTaken = alice
    aliceTaken.email = "carol@example.com"
    await attempt("update to a taken email") { try await store.write { [aliceTaken] in try $0.update(aliceTaken) } }
    var aliceLocked = alice
    aliceLocked.failedSignIns = 5
    aliceLocked.lockedUntil = ms(60_000)
    await attempt("update user") { try await store.write { [aliceLocked] in try $0.update(aliceLocked) } }
    var carolElsewhere = carol
    carolElsewhere.tenantID = t2
    carolElsewhere.role = .member
    await attempt("update through another tenant") { try await store.write { [carolElsewhere] in try $0.update(carolElsewhere) } }
    observe("users page", .users(try await store.read { try $0.users(tenant: t1, afterEmail: nil, limit: 10) }))
    observe("users after", .users(try await store.read { try $0.users(tenant: t1, afterEmail: "alice@example.com", limit: 1) }))
    observe("user by email t2", .user(try await store.read { try $0.user(tenant: t2, email: "alice@example.com") }))
    observe("user of t1 via t2", .user(try await store.read { try $0.user(tenant: t2, id: carol.id) }))
    observe("carol", .user(try await store.read { try $0.user(tenant: t1, id: carol.id) }))

    let sessions = (1...4).map { makeSession($0, tenant: t1, user: carol.id, token: UInt8($0), at: Int64(10 * $0)) }
    let aliceSession = makeSession(5, tenant: t1, user: alice.id, token: 5, at: 15)
    await attempt("insert sessions") {
        try await store.write { writer in
            for session in sessions + [aliceSession] { try writer.insert(session) }
        }
    }
    observe("revoke one", .revoked(try await store.write { try $0.revokeSession(tenant: t1, id: sessions[1].id, at: ms(100), reason: "signed_out") }))
    observe("revoke again", .revoked(try await store.write { try $0.revokeSession(tenant: t1, id: sessions[1].id, at: ms(101), reason: "x") }))
    observe("revoke via t2", .revoked(try await store.write { try $0.revokeSession(tenant: t2, id: sessions[0].id, at: ms(102), reason: "x") }))
    observe("live sessions", .sessions(try await store.read { try $0.sessions(tenant: t1, user: carol.id) }))
    observe(
        "revoke others",
        .revokedIDs(try await store.write {
            try $0.revokeSessions(tenant: t1, user: carol.id, except: sessions[3].id, at: ms(200), reason: "others")
        }))
    observe(
        "revoke others via t2",
        .revokedIDs(try await store.write {
            try $0.revokeSessions(tenant: t2, user: alice.id, except: nil, at: ms(200), reason: "others")
        }))
    observe("live after", .sessions(try await store.read { try $0.sessions(tenant: t1, user: carol.id) }))
    observe("alice live", .sessions(try await store.read { try $0.sessions(tenant: t1, user: alice.id) }))
    observe("session by hash", .session(try await store.read { try $0.session(tenant: t1, tokenHash: token(2)) }))
    observe("session by hash via t2", .session(try await store.read { try $0.session(tenant: t2, tokenHash: token(2)) }))
    observe("session by id", .session(try await store.read { try $0.session(tenant: t1, id: sessions[0].id) }))
    // Validate's one lookup: the session (revoked ones too) with its user's facts.
    observe("for validate", .forValidate(try await store.read { try $0.sessionForValidate(tenant: t1, tokenHash: token(4)) }))
    observe("for validate revoked", .forValidate(try await store.read { try $0.sessionForValidate(tenant: t1, tokenHash: token(2)) }))
    observe("for validate alice", .forValidate(try await store.read { try $0.sessionForValidate(tenant: t1, tokenHash: token(5)) }))
    observe("for validate via t2", .forValidate(try await store.read { try $0.sessionForValidate(tenant: t2, tokenHash: token(4)) }))
    observe("for validate unknown", .forValidate(try await store.read { try $0.sessionForValidate(tenant: t1, tokenHash: token(99)) }))
    let completed = await withCheckedContinuation { (continuation: CheckedContinuation<Result<SessionWithUserFacts?, any Error>, Never>) in
        store.read({ try $0.sessionForValidate(tenant: t1, tokenHash: token(4)) }) { continuation.resume(returning: $0) }
    }
    observe("for validate by completion", .forValidate(try completed.get()))

    let live = makeReset(tenant: t1, user: carol.id, token: 20, at: 1_000, expires: 5_000)
    let shortLived = makeReset(tenant: t1, user: alice.id, token: 21, at: 1_000, expires: 1_500)
    await attempt("insert resets") {
        try await store.write { writer in
            try writer.insert(live)
            try writer.insert(shortLived)
        }
    }
    observe("consume via t2", .reset(try await store.write { try $0.consumePasswordReset(tenant: t2, tokenHash: token(20), at: ms(2_000)) }))
    observe("consume", .reset(try await store.write { try $0.consumePasswordReset(tenant: t1, tokenHash: token(20), at: ms(2_000)) }))
    observe("consume again", .reset(try await store.write { try $0.consumePasswordReset(tenant: t1, tokenHash: token(20), at: ms(2_001)) }))
    observe("consume expired", .reset(try await store.write { try $0.consumePasswordReset(tenant: t1, tokenHash: token(21), at: ms(1_500)) }))
    observe("reset after use", .reset(try await store.read { try $0.passwordReset(tenant: t1, tokenHash: token(20)) }))
    observe("reset via t2", .reset(try await store.read { try $0.passwordReset(tenant: t2, tokenHash: token(21)) }))

    await attempt("append events and log") {
        try await store.write { writer in
            try writer.append(.userCreated(userID: alice.id, email: alice.email, role: .member), tenant: t1, at: ms(10))
            try writer.append(.passwordResetUnknownEmail(email: "x@example.com", ip: "192.0.2.1"), tenant: t2, at: ms(11))
            try writer.append(makeLogEntry(tenant: t1, user: carol.id, kind: .signInFailed, detail: "1", at: 10))
            try writer.append(makeLogEntry(tenant: t1, user: alice.id, kind: .signInSucceeded, detail: "2", at: 11))
            try writer.append(makeLogEntry(tenant: t1, user: carol.id, kind: .signInSucceeded, detail: "3", at: 12))
        }
    }
    await attempt("rolled back write") {
        try await store.write { writer in
            try writer.insert(makeUser(9, tenant: t1, email: "ghost@example.com"))
            try writer.append(.userDisabled(userID: carol.id, email: carol.email), tenant: t1, at: ms(13))
            try writer.append(makeLogEntry(tenant: t1, user: carol.id, kind: .userDisabled, detail: "ghost", at: 13))
            throw IntentionalError()
        }
    }
    await attempt("more events and log") {
        try await store.write { writer in
            try writer.append(.sessionRevoked(sessionID: sessions[0].id, userID: carol.id, reason: "r"), tenant: t1, at: ms(14))
            try writer.append(makeLogEntry(tenant: t1, user: carol.id, kind: .sessionRevoked, detail: "4", at: 14))
        }
    }
    observe("ghost", .user(try await store.read { try $0.user(tenant: t1, email: "ghost@example.com") }))
    observe("events", .events(try await store.read { try $0.events(after: 0, limit: 10) }))
    observe("events page", .events(try await store.read { try $0.events(after: 1, limit: 1) }))
    observe("carol log", .log(try await store.read { try $0.securityLog(tenant: t1, user: carol.id, beforeID: nil, limit: 10) }))
    observe("carol log older", .log(try await store.read { try $0.securityLog(tenant: t1, user: carol.id, beforeID: 3, limit: 10) }))
    observe("carol log limit", .log(try await store.read { try $0.securityLog(tenant: t1, user: carol.id, beforeID: nil, limit: 1) }))
    observe("carol log via t2", .log(try await store.read { try $0.securityLog(tenant: t2, user: carol.id, beforeID: nil, limit: 10) }))
    return observations
}
