import Foundation
import MoatStore
import Synchronization
import XCTest

@testable import MoatCore

// MARK: - Fixtures (shared with SessionLivenessTableTests)

/// The payload is the event type's bytes.
struct MarkTestEncoder: EventEncoder {
    func encode(_ event: DomainEvent) -> [UInt8] { Array(event.type.utf8) }
}

/// A clock tests set by hand.
final class MarkTestClock: WallClock {
    private let value: Mutex<Timestamp>
    init(_ now: Timestamp) { value = Mutex(now) }
    func now() -> Timestamp { value.withLock { $0 } }
    func set(_ now: Timestamp) { value.withLock { $0 = now } }
}

/// Records every batch of marks a store publishes.
final class RecordingMarkSink: ValidityMarkSink {
    private let received = Mutex<[ValidityMarks]>([])
    func apply(_ marks: ValidityMarks) { received.withLock { $0.append(marks) } }
    /// Everything received since the last call, merged.
    func take() -> ValidityMarks {
        received.withLock { batches in
            defer { batches.removeAll() }
            var merged = ValidityMarks()
            for batch in batches { merged.formUnion(batch) }
            return merged
        }
    }
}

/// The store implementations, each fresh, for one check: the memory and
/// SQLite stores always, the PostgreSQL one when `MOAT_TEST_POSTGRES_URL`
/// is set (scripts/test sets it).
enum StoreKind: String, CaseIterable {
    case memory, sqlite, postgres

    static var allCases: [StoreKind] {
        testPostgresURL == nil ? [.memory, .sqlite] : [.memory, .sqlite, .postgres]
    }

    /// The schema of each open PostgreSQL store, dropped by `close`.
    private static let schemas = Mutex<[ObjectIdentifier: PostgresTestSchema]>([:])

    func open(_ directory: TemporaryDirectory) async throws -> any AccountStore {
        switch self {
        case .memory:
            return MemoryAccountStore(encoder: MarkTestEncoder())
        case .sqlite:
            return try await SQLiteAccountStore.open(
                path: directory.path("\(UUID().uuidString).db"), readerCount: 2, encoder: MarkTestEncoder(),
                logger: testLogger)
        case .postgres:
            let schema = try await PostgresTestSchema.create()
            let store = try await schema.openStore(encoder: MarkTestEncoder())
            Self.schemas.withLock { $0[ObjectIdentifier(store)] = schema }
            return store
        }
    }

    func close(_ store: any AccountStore) async {
        if let sqlite = store as? SQLiteAccountStore { await sqlite.close() }
        if let postgres = store as? PostgresAccountStore {
            await postgres.close()
            await Self.schemas.withLock { $0.removeValue(forKey: ObjectIdentifier(postgres)) }?.drop()
        }
    }
}

/// A tenant, an active user with two live sessions, and a second user.
struct MarkFixture: Sendable {
    let tenant: Tenant
    let user: User
    let other: User
    let first: Session
    let second: Session
    let now = Timestamp(milliseconds: 10_000_000)

    init() {
        tenant = Tenant(
            id: .random(), slug: "marks-\(UUID().uuidString.prefix(8).lowercased())", name: "Marks",
            policy: TenantPolicy(), createdAt: Timestamp(milliseconds: 1_000))
        user = User(
            id: .random(), tenantID: tenant.id, email: "user@marks.test", passwordHash: "$argon2id$x", role: .member,
            createdAt: Timestamp(milliseconds: 2_000))
        other = User(
            id: .random(), tenantID: tenant.id, email: "other@marks.test", passwordHash: "$argon2id$x", role: .admin,
            createdAt: Timestamp(milliseconds: 2_000))
        first = Self.session(tenant: tenant.id, user: user.id)
        second = Self.session(tenant: tenant.id, user: user.id)
    }

    static func session(tenant: TenantID, user: UserID) -> Session {
        Session(
            id: .random(), tenantID: tenant, userID: user, tokenHash: OpaqueToken.hash(OpaqueToken.make()),
            client: ClientDetails(), createdAt: Timestamp(milliseconds: 9_000_000),
            lastActiveAt: Timestamp(milliseconds: 9_000_000), absoluteExpiresAt: Timestamp(milliseconds: 90_000_000),
            idleTimeoutSeconds: 3_600, secondFactorSatisfied: false)
    }

    func seed(_ writer: any AccountStoreWriter) throws {
        try writer.insert(tenant)
        try writer.insert(user)
        try writer.insert(other)
        try writer.insert(first)
        try writer.insert(second)
    }

    var credential: TwoFactorCredential {
        TwoFactorCredential(
            tenantID: tenant.id, userID: user.id, sealedSecret: SealedSecret(keyID: "k1", box: [1, 2, 3]),
            enabledAt: now)
    }
}

// MARK: - The table

/// How a writer method relates to cached Validate answers.
enum ValidityClass {
    /// It can make a cached answer wrong: run `exercise` (after `setup`, in
    /// its own write) and expect exactly `expected` marked.
    case marks(
        setup: @Sendable (any AccountStoreWriter, MarkFixture) throws -> Void = { _, _ in },
        exercise: @Sendable (any AccountStoreWriter, MarkFixture) throws -> Void,
        expected: @Sendable (MarkFixture) -> ValidityMarks)
    /// It cannot; the reason says why.
    case unaffected(String)
}

/// Every method of the writer protocols in `Sources/MoatCore/Store`, by its
/// declaration (name and parameters, whitespace collapsed). A method added
/// to a writer protocol and not added here fails
/// `testEveryWriterMethodIsClassified`.
let writerMethodClasses: [String: ValidityClass] = [
    // AccountStoreWriter
    "insert(_ tenant: Tenant)": .unaffected("a new tenant has nothing cached; lookups of unknown tenants are not cached"),
    "update(_ tenant: Tenant)": .marks(
        exercise: { writer, fx in
            var tenant = fx.tenant
            tenant.policy.requireTwoFactor = true
            try writer.update(tenant)
        },
        expected: { ValidityMarks(tenants: [$0.tenant.id]) }),
    "insert(_ user: User)": .unaffected("a new user has no sessions"),
    "update(_ user: User)": .marks(
        exercise: { writer, fx in
            var user = fx.user
            user.status = .disabled
            try writer.update(user)
        },
        expected: { ValidityMarks(users: [$0.user.id]) }),
    "insert(_ session: Session)": .unaffected("a new session is not cached yet"),
    "revokeSession(tenant: TenantID, id: SessionID, at: Timestamp, reason: String)": .marks(
        exercise: { writer, fx in
            XCTAssertTrue(try writer.revokeSession(tenant: fx.tenant.id, id: fx.first.id, at: fx.now, reason: "test"))
        },
        expected: { ValidityMarks(users: [$0.user.id]) }),
    "revokeSessions(tenant: TenantID, user: UserID, except: SessionID?, at: Timestamp, reason: String)": .marks(
        exercise: { writer, fx in
            XCTAssertEqual(
                try writer.revokeSessions(tenant: fx.tenant.id, user: fx.user.id, except: fx.first.id, at: fx.now, reason: "t"),
                [fx.second.id])
        },
        expected: { ValidityMarks(users: [$0.user.id]) }),
    "touchSessions(_ touches: [SessionCache.Touch])": .unaffected("only raises last-active times the cache already holds"),
    "deleteEndedSessions(tenant: TenantID, endedBefore: Timestamp)": .unaffected(
        "deletes only ended sessions: revoked ones were marked when revoked, and every cache judges expiry itself"),
    "insert(_ reset: PasswordResetToken)": .unaffected("reset tokens are not part of Validate"),
    "consumePasswordReset(tenant: TenantID, tokenHash: [UInt8], at: Timestamp)": .unaffected(
        "reset tokens are not part of Validate (the reset itself revokes and updates the user, which mark)"),
    "discardPasswordResets(tenant: TenantID, user: UserID, at: Timestamp)": .unaffected("reset tokens are not part of Validate"),
    "append(_ event: DomainEvent, tenant: TenantID, at: Timestamp)": .unaffected("the outbox is not part of Validate"),
    "append(_ entry: SecurityLogEntry)": .unaffected("the security log is not part of Validate"),
    // DeletionStoreWriter
    "deleteUser(tenant: TenantID, id: UserID)": .marks(
        exercise: { writer, fx in XCTAssertTrue(try writer.deleteUser(tenant: fx.tenant.id, id: fx.user.id)) },
        expected: { ValidityMarks(users: [$0.user.id]) }),
    "deleteTenant(id: TenantID)": .marks(
        exercise: { writer, fx in XCTAssertTrue(try writer.deleteTenant(id: fx.tenant.id)) },
        expected: { ValidityMarks(tenants: [$0.tenant.id], all: true) }),
    "revokeTenantSessions(tenant: TenantID, at: Timestamp, reason: String)": .marks(
        exercise: { writer, fx in
            XCTAssertEqual(try writer.revokeTenantSessions(tenant: fx.tenant.id, at: fx.now, reason: "t").count, 2)
        },
        expected: { ValidityMarks(users: [$0.user.id]) }),
    // EventStoreWriter
    "registerEventConsumer(_ consumer: EventConsumer)": .unaffected("event consumers are daemon-wide, not sessions"),
    "recordEventConsumerPoll(name: String, at: Timestamp)": .unaffected("event consumers are not part of Validate"),
    "advanceEventConsumer(name: String, to sequence: Int64, at: Timestamp)": .unaffected(
        "event consumers are not part of Validate"),
    "deleteEventConsumer(name: String)": .unaffected("event consumers are not part of Validate"),
    "deleteEvents(through sequence: Int64, createdBefore: Timestamp, limit: Int)": .unaffected(
        "the outbox is not part of Validate"),
    // TeamStoreWriter: Validate reports the tenant role, never team roles.
    "insert(_ team: Team)": .unaffected("teams are not part of Validate"),
    "renameTeam(tenant: TenantID, id: TeamID, name: String)": .unaffected("teams are not part of Validate"),
    "deleteTeam(tenant: TenantID, id: TeamID)": .unaffected("teams are not part of Validate"),
    "insert(_ member: TeamMember)": .unaffected("team memberships are not part of Validate"),
    "setTeamRole(tenant: TenantID, team: TeamID, user: UserID, role: TeamRole)": .unaffected(
        "team roles are not part of Validate (the tenant role is)"),
    "deleteTeamMember(tenant: TenantID, team: TeamID, user: UserID)": .unaffected(
        "team memberships are not part of Validate"),
    "insert(_ invitation: TeamInvitation)": .unaffected("invitations are not part of Validate"),
    "revokeTeamInvitation(tenant: TenantID, id: InvitationID, at: Timestamp)": .unaffected(
        "invitations are not part of Validate"),
    "acceptTeamInvitation(tenant: TenantID, tokenHash: [UInt8], user: UserID, at: Timestamp)": .unaffected(
        "invitations are not part of Validate"),
    // SignInThrottleStoreWriter
    "setUnknownEmailLockout(tenant: TenantID, email: String, _ lockout: Lockout, at: Timestamp, capacity: Int)":
        .unaffected("an email with no account has no sessions"),
    // TwoFactorStoreWriter
    "setTwoFactor(_ credential: TwoFactorCredential)": .marks(
        exercise: { writer, fx in try writer.setTwoFactor(fx.credential) },
        expected: { ValidityMarks(users: [$0.user.id]) }),
    "deleteTwoFactor(tenant: TenantID, user: UserID)": .marks(
        setup: { writer, fx in try writer.setTwoFactor(fx.credential) },
        exercise: { writer, fx in XCTAssertTrue(try writer.deleteTwoFactor(tenant: fx.tenant.id, user: fx.user.id)) },
        expected: { ValidityMarks(users: [$0.user.id]) }),
    "advanceTwoFactorStep(tenant: TenantID, user: UserID, step: Int64)": .unaffected(
        "the replay guard is not part of Validate"),
    "setTwoFactorAttempts(tenant: TenantID, user: UserID, failures: Int, lockedUntil: Timestamp?)": .unaffected(
        "the code lockout is not part of Validate"),
    "setPendingTwoFactor(_ pending: PendingTwoFactor)": .unaffected("an unconfirmed enrolment changes nothing Validate reports"),
    "deletePendingTwoFactor(tenant: TenantID, user: UserID)": .unaffected(
        "an unconfirmed enrolment changes nothing Validate reports"),
    "replaceRecoveryCodes(tenant: TenantID, user: UserID, with codes: [RecoveryCode])": .unaffected(
        "recovery codes are not part of Validate"),
    "useRecoveryCode(tenant: TenantID, user: UserID, slot: Int, at: Timestamp)": .unaffected(
        "recovery codes are not part of Validate"),
    "insert(_ challenge: SignInChallenge)": .unaffected("sign-in challenges are not sessions"),
    "consumeSignInChallenge(tenant: TenantID, tokenHash: [UInt8], at: Timestamp)": .unaffected(
        "sign-in challenges are not sessions"),
    "deleteExpiredTwoFactorState(tenant: TenantID, before: Timestamp)": .unaffected(
        "expired challenges and enrolments are not part of Validate"),
]

/// The declarations of every `protocol …Writer` in MoatCore's store
/// directory, e.g. `revokeSession(tenant: TenantID, id: SessionID, at: Timestamp, reason: String)`.
func scannedWriterMethods() throws -> [String: String] {
    let storeDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/MoatCore/Store")
    let files = try FileManager.default.contentsOfDirectory(atPath: storeDirectory.path).filter { $0.hasSuffix(".swift") }
    let protocolPattern = try NSRegularExpression(pattern: #"protocol\s+(\w+Writer)\b[^{]*\{"#)
    let funcPattern = try NSRegularExpression(pattern: #"\bfunc\s+(\w+\s*\([^)]*\))"#)
    var found: [String: String] = [:]
    for file in files {
        let text = try String(contentsOf: storeDirectory.appendingPathComponent(file), encoding: .utf8)
        let ns = text as NSString
        for match in protocolPattern.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            // The protocol's body: up to the brace that closes it.
            var depth = 1
            var index = match.range.location + match.range.length
            let start = index
            while index < ns.length, depth > 0 {
                let character = ns.character(at: index)
                if character == 0x7B { depth += 1 }
                if character == 0x7D { depth -= 1 }
                index += 1
            }
            let body = ns.substring(with: NSRange(location: start, length: index - start))
            let bodyNS = body as NSString
            for declaration in funcPattern.matches(in: body, range: NSRange(location: 0, length: bodyNS.length)) {
                let signature = bodyNS.substring(with: declaration.range(at: 1))
                    .split(whereSeparator: \.isWhitespace).joined(separator: " ")
                    .replacingOccurrences(of: "( ", with: "(").replacingOccurrences(of: " (", with: "(")
                found[signature] = "\(ns.substring(with: match.range(at: 1))) in \(file)"
            }
        }
    }
    return found
}

// MARK: - Tests

/// Every store write that can make a cached Validate answer wrong marks
/// what it touched, on both stores, and every writer method is classified.
final class ValidityMarkTests: XCTestCase {
    func testEveryWriterMethodIsClassified() throws {
        let scanned = try scannedWriterMethods()
        // The scan itself works: it sees the protocols' well-known methods.
        XCTAssertGreaterThan(scanned.count, 30, "the scan of Sources/MoatCore/Store found \(scanned.count) methods")
        XCTAssertNotNil(scanned["revokeSession(tenant: TenantID, id: SessionID, at: Timestamp, reason: String)"])
        for (signature, place) in scanned.sorted(by: { $0.key < $1.key }) where writerMethodClasses[signature] == nil {
            XCTFail(
                "\(place) declares `\(signature)`, which writerMethodClasses does not classify: "
                    + "add it as .marks (with a test of what it marks) or .unaffected (with why)")
        }
        for signature in writerMethodClasses.keys.sorted() where scanned[signature] == nil {
            XCTFail("writerMethodClasses lists `\(signature)`, which no writer protocol declares any more")
        }
    }

    func testEveryMarkingWriteMarksWhatItTouchedOnBothStores() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var checked = 0
        for kind in StoreKind.allCases {
            for (signature, validity) in writerMethodClasses.sorted(by: { $0.key < $1.key }) {
                guard case .marks(let setup, let exercise, let expected) = validity else { continue }
                let store = try await kind.open(directory)
                let sink = RecordingMarkSink()
                store.validityMarks.subscribe(sink)
                let fixture = MarkFixture()
                try await store.write { writer in
                    try fixture.seed(writer)
                    try setup(writer, fixture)
                }
                _ = sink.take()
                try await store.write { writer in try exercise(writer, fixture) }
                XCTAssertEqual(sink.take(), expected(fixture), "\(kind): \(signature)")
                await kind.close(store)
                checked += 1
            }
        }
        XCTAssertEqual(checked, StoreKind.allCases.count * writerMethodClasses.values.filter { if case .marks = $0 { true } else { false } }.count)
        XCTAssertGreaterThanOrEqual(checked, 18)
    }

    func testSeedingWritesMarkNothing() async throws {
        // The .unaffected inserts really mark nothing (so marks are not
        // applied on every sign-in).
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        for kind in StoreKind.allCases {
            let store = try await kind.open(directory)
            let sink = RecordingMarkSink()
            store.validityMarks.subscribe(sink)
            let fixture = MarkFixture()
            try await store.write { writer in try fixture.seed(writer) }
            XCTAssertEqual(sink.take(), ValidityMarks(), "\(kind)")
            await kind.close(store)
        }
    }

    func testUserUpdateMarksOnlyWhatValidateReports() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let changes: [(String, Bool, @Sendable (inout User) -> Void)] = [
            ("failed sign-ins", false, { $0.failedSignIns += 1 }),
            ("lockout", false, { $0.lockedUntil = Timestamp(milliseconds: 99) }),
            ("password", false, { $0.passwordHash = "$argon2id$y" }),
            ("status", true, { $0.status = .pendingDeletion }),
            ("role", true, { $0.role = .owner }),
            ("email", true, { $0.email = "renamed@marks.test" }),
            ("two-factor", true, { $0.twoFactorEnabled = true }),
        ]
        for kind in StoreKind.allCases {
            for (name, marks, change) in changes {
                let store = try await kind.open(directory)
                let sink = RecordingMarkSink()
                store.validityMarks.subscribe(sink)
                let fixture = MarkFixture()
                try await store.write { writer in try fixture.seed(writer) }
                _ = sink.take()
                try await store.write { writer in
                    var user = fixture.user
                    change(&user)
                    try writer.update(user)
                }
                XCTAssertEqual(sink.take(), marks ? ValidityMarks(users: [fixture.user.id]) : ValidityMarks(), "\(kind): \(name)")
                await kind.close(store)
            }
        }
    }

    func testAWriteAnywhereReachesTheAuthorityBeforeItReturns() async throws {
        // Not through AccountService: a raw store write still invalidates,
        // because the authority is subscribed to the store itself.
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        for kind in StoreKind.allCases {
            let store = try await kind.open(directory)
            let fixture = MarkFixture()
            let token = OpaqueToken.make()
            var session = MarkFixture.session(tenant: fixture.tenant.id, user: fixture.user.id)
            session.tokenHash = OpaqueToken.hash(token)
            try await store.write { [session] writer in
                try fixture.seed(writer)
                try writer.insert(session)
            }
            let authority = SessionAuthority(store: store, clock: MarkTestClock(fixture.now))
            _ = try await authority.validate(tenantReference: fixture.tenant.slug, token: token)
            guard case .success = authority.validateCached(tenantReference: fixture.tenant.slug, token: token) else {
                XCTFail("\(kind): not cached after a validate")
                continue
            }
            try await store.write { [session] writer in
                _ = try writer.revokeSession(tenant: fixture.tenant.id, id: session.id, at: fixture.now, reason: "raw")
            }
            if case .success = authority.validateCached(tenantReference: fixture.tenant.slug, token: token) {
                XCTFail("\(kind): a revoked session is still answered from the cache")
            }
            do {
                _ = try await authority.validate(tenantReference: fixture.tenant.slug, token: token)
                XCTFail("\(kind): a revoked session validated")
            } catch let error as DomainError {
                XCTAssertEqual(error, .sessionInvalid)
            }

            // A tenant change drops the cached tenant: the next Validate
            // sees the new policy.
            try await store.write { writer in
                var tenant = fixture.tenant
                tenant.policy.requireTwoFactor = true
                try writer.update(tenant)
            }
            let reloaded = try await authority.tenant(reference: fixture.tenant.slug)
            XCTAssertTrue(reloaded.policy.requireTwoFactor, "\(kind)")
            await kind.close(store)
        }
    }
}
