import Foundation
import MoatStore
import XCTest

@testable import MoatCore

/// One row of the liveness table: a session, its user's and tenant's
/// status, the moment of the call, and what every path must answer.
struct LivenessRow: Sendable {
    var name: String
    var verdict: SessionVerdict
    var revoked = false
    var userStatus = UserStatus.active
    var tenantStatus = TenantStatus.active
    /// The call names another tenant than the session's.
    var askOtherTenant = false
    /// Milliseconds after the session's last stored activity.
    var at: Int64
    /// Activity kept in memory (not flushed), milliseconds after the stored one.
    var pendingActivity: Int64? = nil
    /// The absolute lifetime, milliseconds after creation.
    var lifetime: Int64 = 86_400_000
}

/// The session lives 1 h idle; created and last active at `base`.
private let base: Int64 = 50_000_000
private let idle: Int64 = 3_600_000

let livenessTable: [LivenessRow] = [
    LivenessRow(name: "fresh", verdict: .live, at: 1_000),
    LivenessRow(name: "revoked", verdict: .revoked, revoked: true, at: 1_000),
    LivenessRow(name: "idle timeout not yet reached", verdict: .live, at: idle - 1),
    LivenessRow(name: "idle timeout reached", verdict: .idleExpired, at: idle),
    LivenessRow(name: "idle timeout passed", verdict: .idleExpired, at: idle + 60_000),
    LivenessRow(
        name: "idle by the store, kept alive by unflushed activity", verdict: .live, at: idle + 60_000,
        pendingActivity: 600_000),
    LivenessRow(
        name: "unflushed activity too old", verdict: .idleExpired, at: idle + 60_000, pendingActivity: 30_000),
    LivenessRow(name: "absolute lifetime not yet reached", verdict: .live, at: 9_999, lifetime: 10_000),
    LivenessRow(name: "absolute lifetime reached", verdict: .lifetimeExpired, at: 10_000, lifetime: 10_000),
    LivenessRow(
        name: "absolute lifetime reached despite activity", verdict: .lifetimeExpired, at: 10_000,
        pendingActivity: 9_000, lifetime: 10_000),
    LivenessRow(name: "user disabled", verdict: .userNotActive, userStatus: .disabled, at: 1_000),
    LivenessRow(name: "user pending deletion", verdict: .userNotActive, userStatus: .pendingDeletion, at: 1_000),
    LivenessRow(name: "tenant pending deletion", verdict: .tenantNotActive, tenantStatus: .pendingDeletion, at: 1_000),
    LivenessRow(name: "other tenant", verdict: .otherTenant, askOtherTenant: true, at: 1_000),
    LivenessRow(name: "revoked and idle", verdict: .revoked, revoked: true, at: idle + 1),
]

/// The rows, built as store rows.
private struct LivenessCase: Sendable {
    let row: LivenessRow
    let tenant: Tenant
    let otherTenant: Tenant
    let user: User
    let session: Session
    let token: String

    init(_ row: LivenessRow) {
        self.row = row
        let suffix = UUID().uuidString.prefix(8).lowercased()
        tenant = Tenant(
            id: .random(), slug: "live-\(suffix)", name: "Live", policy: TenantPolicy(),
            createdAt: Timestamp(milliseconds: 1_000), status: row.tenantStatus,
            purgeAfter: row.tenantStatus == .active ? nil : Timestamp(milliseconds: base * 10))
        otherTenant = Tenant(
            id: .random(), slug: "other-\(suffix)", name: "Other", policy: TenantPolicy(),
            createdAt: Timestamp(milliseconds: 1_000))
        user = User(
            id: .random(), tenantID: tenant.id, email: "u@live.test", passwordHash: "$argon2id$x", role: .member,
            status: row.userStatus, createdAt: Timestamp(milliseconds: 2_000),
            purgeAfter: row.userStatus == .pendingDeletion ? Timestamp(milliseconds: base * 10) : nil)
        token = OpaqueToken.make()
        session = Session(
            id: .random(), tenantID: tenant.id, userID: user.id, tokenHash: OpaqueToken.hash(token),
            client: ClientDetails(), createdAt: Timestamp(milliseconds: base),
            lastActiveAt: Timestamp(milliseconds: base), absoluteExpiresAt: Timestamp(milliseconds: base + row.lifetime),
            idleTimeoutSeconds: idle / 1000, secondFactorSatisfied: false,
            revokedAt: row.revoked ? Timestamp(milliseconds: base + 500) : nil, revokeReason: row.revoked ? "t" : nil)
    }

    var now: Timestamp { Timestamp(milliseconds: base + row.at) }
    var pending: Timestamp? { row.pendingActivity.map { Timestamp(milliseconds: base + $0) } }
    var asked: Tenant { row.askOtherTenant ? otherTenant : tenant }

    func seed(_ store: any AccountStore) async throws {
        try await store.write { writer in
            try writer.insert(tenant)
            try writer.insert(otherTenant)
            try writer.insert(user)
            try writer.insert(session)
        }
    }
}

/// One table drives every judge of session liveness: the rule itself, the
/// session cache, the store path of Validate, `authenticate`, and the
/// stores' retention query, on the memory and the SQLite store.
final class SessionLivenessTableTests: XCTestCase {
    func testTheRule() {
        for row in livenessTable {
            let c = LivenessCase(row)
            XCTAssertEqual(
                SessionLiveness.verdict(
                    session: c.session, lastActive: c.pending, userStatus: row.userStatus, tenant: c.asked.id,
                    tenantStatus: c.asked.status, at: c.now),
                row.verdict, row.name)
        }
    }

    func testTheSessionCache() {
        for row in livenessTable {
            let c = LivenessCase(row)
            let cache = SessionCache()
            guard case .miss(let epoch) = cache.validate(tenant: c.tenant.id, tokenHash: c.session.tokenHash, now: c.now)
            else { return XCTFail("\(row.name): cached before insert") }
            if let pending = c.pending { cache.touch(tenant: c.tenant.id, session: c.session.id, at: pending) }
            cache.insert(
                ValidatedSession(
                    session: c.session, email: c.user.email, role: c.user.role, twoFactorEnabled: false,
                    userStatus: row.userStatus),
                loadedAt: epoch)
            let lookup = cache.validate(
                tenant: c.asked.id, tenantStatus: c.asked.status, tokenHash: c.session.tokenHash, now: c.now)
            switch lookup {
            case .hit where row.verdict == .live: break
            case .invalid where row.verdict != .live: break
            default: XCTFail("\(row.name): the cache answered \(lookup), expected \(row.verdict)")
            }
        }
    }

    func testValidateThroughTheStoreAndAuthenticateOnBothStores() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        for kind in StoreKind.allCases {
            for row in livenessTable {
                let c = LivenessCase(row)
                let store = try await kind.open(directory)
                try await c.seed(store)
                let label = "\(kind): \(row.name)"

                // Validate, store path (an empty cache).
                let validating = SessionAuthority(store: store, clock: MarkTestClock(c.now))
                if let pending = c.pending { validating.cache.touch(tenant: c.tenant.id, session: c.session.id, at: pending) }
                XCTAssertNil(
                    validating.validateCached(tenantReference: c.asked.slug, token: c.token).flatMap { try? $0.get() },
                    label)
                let validated = await outcome { try await validating.validate(tenantReference: c.asked.slug, token: c.token) }
                XCTAssertEqual(validated, row.verdict == .live ? nil : .sessionInvalid, "validate, \(label)")
                if row.verdict == .live {
                    // And then the cache path answers the same.
                    guard case .success = validating.validateCached(tenantReference: c.asked.slug, token: c.token) else {
                        XCTFail("validate cached, \(label)")
                        continue
                    }
                }

                // authenticate, on its own authority.
                let authenticating = SessionAuthority(store: store, clock: MarkTestClock(c.now))
                if let pending = c.pending {
                    authenticating.cache.touch(tenant: c.tenant.id, session: c.session.id, at: pending)
                }
                let authenticated = await outcome { try await authenticating.authenticate(tenant: c.asked.id, token: c.token) }
                XCTAssertEqual(authenticated, row.verdict == .live ? nil : .sessionInvalid, "authenticate, \(label)")
                await kind.close(store)
            }
        }
    }

    func testRetentionQueryAgreesWithTheRuleOnBothStores() async throws {
        // deleteEndedSessions is the one place liveness is in SQL: what it
        // deletes just after `now` must be what the rule calls ended.
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        for kind in StoreKind.allCases {
            for row in livenessTable {
                let c = LivenessCase(row)
                let store = try await kind.open(directory)
                try await c.seed(store)
                let cutoff = Timestamp(milliseconds: c.now.milliseconds + 1)
                let deleted = try await store.write { writer in
                    try writer.deleteEndedSessions(tenant: c.tenant.id, endedBefore: cutoff)
                }
                let label = "\(kind): \(row.name)"
                XCTAssertEqual(deleted == 1, SessionLiveness.hasEnded(c.session, before: cutoff), label)
                // Without unflushed activity (retention flushes first) and
                // apart from user and tenant state, that is the table's verdict.
                if c.pending == nil, row.userStatus == .active, row.tenantStatus == .active, !row.askOtherTenant {
                    XCTAssertEqual(deleted == 1, row.verdict != .live, label)
                }
                await kind.close(store)
            }
        }
    }

    /// The domain error a call threw, or nil if it succeeded.
    private func outcome<T>(_ body: () async throws -> T) async -> DomainError? {
        do {
            _ = try await body()
            return nil
        } catch let error as DomainError {
            return error
        } catch {
            // Not a domain answer at all: the row fails on its own.
            XCTFail("unexpected error \(error)")
            return DomainError.sessionInvalid
        }
    }
}
