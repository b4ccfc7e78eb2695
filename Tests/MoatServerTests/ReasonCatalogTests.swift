import Foundation
import MoatCore
import MoatRPC
import XCTest

@testable import MoatServer

/// The reasons moatd sends are a contract: clients switch on them. This pins
/// the complete set, so renaming, adding or removing one is a visible change
/// in this file, and checks the README documents exactly this set.
final class ReasonCatalogTests: XCTestCase {
    /// Runtime and transport (`RPCError.Reason`).
    static let runtime: Set<String> = [
            "ADMIN_REQUIRED", "CALLER_NOT_ALLOWED", "CANCELLED", "CLIENT_CLOSED", "COMPRESSION_UNSUPPORTED",
            "CONNECTION_CLOSED", "INVALID_TIMEOUT", "SERVICE_NOT_FOUND",
            "DEADLINE_EXCEEDED", "DUPLICATE_REQUEST_ID", "FRAME_TIMEOUT", "FRAME_TOO_LARGE",
            "INTERNAL_ERROR", "INVALID_PAYLOAD", "INVALID_REQUEST_ID", "MALFORMED_FRAME", "NOT_CONNECTED",
            "RESPONSE_TOO_LARGE", "SESSION_REQUIRED", "SHUTTING_DOWN", "TOO_MANY_CONNECTIONS",
            "TRUNCATED_FRAME", "UNKNOWN_METHOD",
    ]
    /// The domain (`DomainError.Reason`).
    static let domain: Set<String> = [
            "ACCOUNT_DISABLED", "ACCOUNT_PENDING_DELETION", "ADDRESS_THROTTLED", "ALREADY_MEMBER", "ALREADY_OWNER",
            "CANNOT_DISABLE_SELF", "CHALLENGE_INVALID", "CODE_OR_PASSWORD_REQUIRED", "CODE_REQUIRED",
            "CONFIRMATION_REQUIRED", "CONSUMER_NAME_INVALID", "CONSUMER_NOT_FOUND", "EMAIL_INVALID",
            "EMAIL_TAKEN", "ENROLLMENT_EXPIRED", "ENROLLMENT_NOT_STARTED", "GRACE_PERIOD_OVER",
            "INVALID_CREDENTIALS", "INVITATION_EMAIL_MISMATCH", "INVITATION_INVALID",
            "INVITATION_NOT_FOUND", "LAST_OWNER", "LAST_TEAM_OWNER", "MAX_EVENTS_INVALID",
            "MEMBER_NOT_FOUND", "NAME_INVALID", "NOT_A_MEMBER", "NOT_PENDING_DELETION", "OVERLOADED",
            "OWNER_REQUIRED", "PAGE_SIZE_INVALID", "PAGE_TOKEN_INVALID", "PASSWORD_IS_EMAIL",
            "PASSWORD_REQUIRED", "PASSWORD_TOO_COMMON", "PASSWORD_TOO_LONG", "PASSWORD_TOO_SHORT",
            "POLICY_INVALID", "QR_CODE_TOO_LONG", "RECOVERY_CODE_INVALID", "RESET_TOKEN_INVALID",
            "ROLE_INVALID", "ROLE_REQUIRED", "SECOND_FACTOR_REQUIRED", "SECRET_SEAL_FAILED",
            "SECRET_UNREADABLE", "SEQUENCE_INVALID", "SESSION_INVALID", "SESSION_NOT_FOUND",
            "SIGN_IN_LOCKED", "SLUG_INVALID", "SLUG_TAKEN", "TEAM_ACTION_INVALID", "TEAM_NAME_INVALID",
            "TEAM_NOT_FOUND", "TEAM_ROLE_INVALID", "TEAM_ROLE_REQUIRED", "TENANT_NOT_FOUND",
            "TENANT_PENDING_DELETION", "TENANT_REQUIRED", "TOTP_CODE_INVALID", "TOTP_CODE_REUSED",
            "TWO_FACTOR_LOCKED", "TWO_FACTOR_NOT_ENABLED", "TYPE_PREFIX_INVALID", "USER_ID_REQUIRED",
            "USER_NOT_FOUND",
    ]
    /// Transient store failures (`StoreFailureReason`).
    static let store: Set<String> = [
            "STORE_BUSY", "STORE_CLOSED", "STORE_FULL", "STORE_INTERRUPTED", "STORE_NO_MEMORY",
            "STORE_TRANSACTION_ABORTED", "STORE_UNAVAILABLE", "SERIALIZATION_FAILURE", "INVALID_TEXT",
    ]
    /// Operations calls (`OperationsReason`).
    static let operations: Set<String> = [
        "BACKUP_EXISTS", "BACKUP_FAILED", "BACKUP_PATH_INVALID", "BACKUP_UNSUPPORTED", "KEY_ROTATION_FAILED",
        "METRICS_DISABLED", "ROTATION_IN_PROGRESS",
    ]
    /// `reason` of `session.revoked` events (`SessionRevocationReason`).
    static let sessionRevoked: Set<String> = [
        "account_deletion", "password_changed", "password_reset", "revoked", "revoked_by_admin", "revoked_others",
        "session_cap", "sign_out", "tenant_deletion", "user_disabled",
    ]
    /// `reason` of `team.invitation_revoked` events (`InvitationRevocationReason`).
    static let invitationRevoked: Set<String> = ["inviter_role_changed", "replaced", "revoked"]

    /// Every status reason in the code.
    static var statusReasons: [String] {
        RPCError.Reason.allCases.map(\.rawValue) + DomainError.Reason.allCases.map(\.rawValue)
            + StoreFailureReason.allCases.map(\.rawValue) + OperationsReason.allCases.map(\.rawValue)
    }

    func testTheCompleteSetOfStatusReasonsIsPinned() {
        XCTAssertEqual(Set(RPCError.Reason.allCases.map(\.rawValue)), Self.runtime)
        XCTAssertEqual(Set(DomainError.Reason.allCases.map(\.rawValue)), Self.domain)
        XCTAssertEqual(Set(StoreFailureReason.allCases.map(\.rawValue)), Self.store)
        XCTAssertEqual(Set(OperationsReason.allCases.map(\.rawValue)), Self.operations)
        XCTAssertEqual(Self.statusReasons.count, 106)
        // No reason is defined twice, in one table or across tables.
        XCTAssertEqual(Set(Self.statusReasons).count, Self.statusReasons.count)
        for reason in Self.statusReasons {
            XCTAssertNotNil(reason.wholeMatch(of: /[A-Z][A-Z0-9_]+/), "\(reason) is not UPPER_SNAKE_CASE")
        }
    }

    func testTheEventReasonsArePinned() {
        XCTAssertEqual(Set(SessionRevocationReason.allCases.map(\.rawValue)), Self.sessionRevoked)
        XCTAssertEqual(Set(InvitationRevocationReason.allCases.map(\.rawValue)), Self.invitationRevoked)
        for reason in SessionRevocationReason.allCases.map(\.rawValue) + InvitationRevocationReason.allCases.map(\.rawValue) {
            XCTAssertNotNil(reason.wholeMatch(of: /[a-z][a-z_]+/), "\(reason) is not lower_snake_case")
        }
    }

    // MARK: README

    private static let readme: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
    }()

    /// The backticked words of the README's "Status reasons" bullet that starts with `label`.
    private func documented(_ label: String) throws -> Set<String> {
        let section = try XCTUnwrap(
            Self.readme.components(separatedBy: "### Status reasons").dropFirst().first?
                .components(separatedBy: "\n## ").first, "README has no Status reasons section")
        let bullets = section.components(separatedBy: "\n- ")
        let bullet = try XCTUnwrap(bullets.first { $0.hasPrefix(label) }, "no bullet \(label)")
        let body = bullet.dropFirst(label.count)
        return Set(body.matches(of: /`([A-Za-z_]+)`/).map { String($0.output.1) }).subtracting(["reason"])
    }

    func testTheREADMEListsExactlyTheseReasons() throws {
        XCTAssertFalse(Self.readme.isEmpty, "README.md not found")
        XCTAssertEqual(try documented("**Runtime and transport**"), Self.runtime)
        XCTAssertEqual(try documented("**Domain**"), Self.domain)
        XCTAssertEqual(try documented("**Store**"), Self.store.union(["INTERNAL_ERROR"]))
        XCTAssertEqual(try documented("**Operations**"), Self.operations)
        XCTAssertEqual(try documented("**`session.revoked` events**"), Self.sessionRevoked)
        XCTAssertEqual(try documented("**`team.invitation_revoked` events**"), Self.invitationRevoked)
    }

    /// Every reason-like word anywhere in the README (`SIGN_IN_LOCKED` in the
    /// sign-in section, ...) is a reason the code has, so a renamed reason
    /// cannot linger in the prose.
    func testEveryReasonTheREADMEMentionsExists() {
        // Backticked upper-case words that are not reasons: team actions, the
        // deletion confirmation, a health status, environment variables, SQL.
        let notReasons: Set<String> = [
            "DELETE", "EDIT_CONTENT", "INVITE", "MANAGE_CONTENT", "MANAGE_MEMBERS", "MANAGE_SETTINGS", "MOAT_SOCKET",
            "RENAME", "SERVING", "TRANSFER_OWNERSHIP", "VIEW",
            // Health's store status (STORE_UNAVAILABLE is also a store reason).
            "STORE_READY",
            // systemd's environment, a socket family, HTTP and HTTP/2 words.
            "AF_UNIX", "HEAD", "LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET", "WATCHDOG_USEC",
            "SETTINGS_MAX_CONCURRENT_STREAMS",
            // PostgreSQL: SQL words, types, libpq's environment, the test server.
            "BEGIN", "BIGINT", "BYTEA", "COMMIT", "MOAT_TEST_POSTGRES_URL", "PGPASSFILE", "PGPASSWORD",
            "SERIALIZABLE",
            // The fuzzing time in scripts/test.
            "MOAT_FUZZ_SECONDS",
        ]
        let known = Set(Self.statusReasons).union(notReasons)
        let mentioned = Set(Self.readme.matches(of: /`([A-Z][A-Z0-9_]{3,})`/).map { String($0.output.1) })
        XCTAssertGreaterThan(mentioned.count, 50)
        XCTAssertEqual(mentioned.subtracting(known), [], "README mentions reasons the code does not have")
    }

    /// Reasons are named, never written inline: no `reason: "..."` string
    /// literal anywhere in Sources/ (DomainError's initializer takes only a
    /// `DomainError.Reason`, so the compiler covers the domain).
    func testNoReasonIsWrittenInline() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        let files = try XCTUnwrap(FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil))
        var scanned = 0
        var inline: [String] = []
        for case let url as URL in files where url.pathExtension == "swift" && !url.path.contains("/MoatProto/") {
            let text = try String(contentsOf: url, encoding: .utf8)
            scanned += 1
            for match in text.matches(of: /reason: "([^"]*)"/) {
                inline.append("\(url.lastPathComponent): \(match.output.0)")
            }
        }
        XCTAssertGreaterThan(scanned, 100)
        XCTAssertEqual(inline, [])
    }
}
