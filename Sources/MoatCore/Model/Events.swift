/// Something another service or the user's mailbox must hear about. Written
/// to the outbox in the same transaction as the change it reports.
public enum DomainEvent: Sendable, Equatable, Codable {
    case tenantCreated(tenantID: TenantID, slug: String, name: String, ownerID: UserID, ownerEmail: String)
    case tenantPolicyUpdated(tenantID: TenantID)
    case userCreated(userID: UserID, email: String, role: TenantRole)
    case userDisabled(userID: UserID, email: String)
    case userEnabled(userID: UserID, email: String)
    case passwordChanged(userID: UserID, email: String, ip: String, userAgent: String, revokedSessions: Int)
    /// Carries the one-time token: the mail service delivers it.
    case passwordResetRequested(
        userID: UserID, email: String, token: String, expiresAt: Timestamp, ip: String, userAgent: String)
    case passwordReset(userID: UserID, email: String, revokedSessions: Int)
    /// A reset was asked for an address with no account in the tenant.
    case passwordResetUnknownEmail(email: String, ip: String)
    case sessionRevoked(sessionID: SessionID, userID: UserID, reason: String)
    /// 2FA turned on, or the authenticator replaced (`replaced`).
    case twoFactorEnabled(userID: UserID, email: String, replaced: Bool)
    /// 2FA turned off; `method` is how the user proved it was them
    /// (`password` or `code`).
    case twoFactorDisabled(userID: UserID, email: String, method: String)
    case twoFactorRecoveryCodesRegenerated(userID: UserID, email: String)
    /// A recovery code completed a sign-in; `remaining` are left.
    case twoFactorRecoveryCodeUsed(userID: UserID, email: String, remaining: Int)
    /// The user asked to delete their account; final at `purgeAfter`.
    case accountDeletionScheduled(userID: UserID, email: String, purgeAfter: Timestamp)
    case accountRestored(userID: UserID, email: String)
    /// The account's rows are gone; downstream services delete theirs.
    case accountPurged(userID: UserID, tenantID: TenantID, email: String)
    case tenantDeletionScheduled(tenantID: TenantID, slug: String, name: String, purgeAfter: Timestamp)
    case tenantDeletionCancelled(tenantID: TenantID, slug: String, name: String)
    /// The tenant and everything in it are gone.
    case tenantPurged(tenantID: TenantID, slug: String, name: String, users: Int)
    case teamCreated(teamID: TeamID, name: String, ownerID: UserID, actorID: UserID?)
    case teamRenamed(teamID: TeamID, previousName: String, name: String, actorID: UserID?)
    case teamDeleted(teamID: TeamID, name: String, memberIDs: [UserID], actorID: UserID?)
    /// Carries the one-time invitation token: the mail service delivers it.
    case teamInvitationCreated(
        invitationID: InvitationID, teamID: TeamID, teamName: String, email: String, role: TeamRole, token: String,
        expiresAt: Timestamp, inviterID: UserID?, inviterEmail: String)
    /// `reason` is an ``InvitationRevocationReason`` raw value.
    case teamInvitationRevoked(invitationID: InvitationID, teamID: TeamID, email: String, reason: String, actorID: UserID?)
    case teamMemberAdded(teamID: TeamID, userID: UserID, email: String, role: TeamRole, invitationID: InvitationID)
    case teamMemberRoleChanged(teamID: TeamID, userID: UserID, previousRole: TeamRole, role: TeamRole, actorID: UserID?)
    case teamMemberRemoved(teamID: TeamID, userID: UserID, role: TeamRole, actorID: UserID?)
    case teamMemberLeft(teamID: TeamID, userID: UserID, role: TeamRole)
    case teamOwnershipTransferred(teamID: TeamID, fromUserID: UserID?, toUserID: UserID, actorID: UserID?)

    /// The event type, e.g. `password.changed`.
    public var type: String {
        switch self {
        case .tenantCreated: "tenant.created"
        case .tenantPolicyUpdated: "tenant.policy_updated"
        case .userCreated: "user.created"
        case .userDisabled: "user.disabled"
        case .userEnabled: "user.enabled"
        case .passwordChanged: "password.changed"
        case .passwordResetRequested: "password_reset.requested"
        case .passwordReset: "password.reset"
        case .passwordResetUnknownEmail: "password_reset.unknown_email"
        case .sessionRevoked: "session.revoked"
        case .twoFactorEnabled: "two_factor.enabled"
        case .twoFactorDisabled: "two_factor.disabled"
        case .twoFactorRecoveryCodesRegenerated: "two_factor.recovery_codes_regenerated"
        case .twoFactorRecoveryCodeUsed: "two_factor.recovery_code_used"
        case .accountDeletionScheduled: "account.deletion_scheduled"
        case .accountRestored: "account.restored"
        case .accountPurged: "account.purged"
        case .tenantDeletionScheduled: "tenant.deletion_scheduled"
        case .tenantDeletionCancelled: "tenant.deletion_cancelled"
        case .tenantPurged: "tenant.purged"
        case .teamCreated: "team.created"
        case .teamRenamed: "team.renamed"
        case .teamDeleted: "team.deleted"
        case .teamInvitationCreated: "team.invitation_created"
        case .teamInvitationRevoked: "team.invitation_revoked"
        case .teamMemberAdded: "team.member_added"
        case .teamMemberRoleChanged: "team.member_role_changed"
        case .teamMemberRemoved: "team.member_removed"
        case .teamMemberLeft: "team.member_left"
        case .teamOwnershipTransferred: "team.ownership_transferred"
        }
    }

    /// What the event is about: a user, team, invitation or tenant id.
    public var subject: String {
        switch self {
        case .tenantCreated(let tenantID, _, _, _, _), .tenantPolicyUpdated(let tenantID),
            .tenantDeletionScheduled(let tenantID, _, _, _), .tenantDeletionCancelled(let tenantID, _, _),
            .tenantPurged(let tenantID, _, _, _):
            tenantID.rawValue
        case .userCreated(let userID, _, _), .userDisabled(let userID, _), .userEnabled(let userID, _),
            .passwordChanged(let userID, _, _, _, _), .passwordResetRequested(let userID, _, _, _, _, _),
            .passwordReset(let userID, _, _), .sessionRevoked(_, let userID, _),
            .twoFactorEnabled(let userID, _, _), .twoFactorDisabled(let userID, _, _),
            .twoFactorRecoveryCodesRegenerated(let userID, _), .twoFactorRecoveryCodeUsed(let userID, _, _),
            .accountDeletionScheduled(let userID, _, _), .accountRestored(let userID, _),
            .accountPurged(let userID, _, _):
            userID.rawValue
        case .passwordResetUnknownEmail(let email, _): email
        case .teamCreated(let teamID, _, _, _), .teamRenamed(let teamID, _, _, _), .teamDeleted(let teamID, _, _, _):
            teamID.rawValue
        case .teamInvitationCreated(let invitationID, _, _, _, _, _, _, _, _),
            .teamInvitationRevoked(let invitationID, _, _, _, _):
            invitationID.rawValue
        case .teamMemberAdded(_, let userID, _, _, _), .teamMemberRoleChanged(_, let userID, _, _, _),
            .teamMemberRemoved(_, let userID, _, _), .teamMemberLeft(_, let userID, _),
            .teamOwnershipTransferred(_, _, let userID, _):
            userID.rawValue
        }
    }
}

/// Turns domain events into payload bytes for the outbox (protobuf in the
/// daemon, see MoatServer).
public protocol EventEncoder: Sendable {
    func encode(_ event: DomainEvent) -> [UInt8]
}

/// An event as stored in the outbox.
public struct EventRecord: Sendable, Equatable {
    /// Global, increasing with commit order.
    public var sequence: Int64
    public var tenantID: TenantID
    public var type: String
    public var subject: String
    public var payload: [UInt8]
    public var createdAt: Timestamp

    public init(sequence: Int64, tenantID: TenantID, type: String, subject: String, payload: [UInt8], createdAt: Timestamp) {
        self.sequence = sequence
        self.tenantID = tenantID
        self.type = type
        self.subject = subject
        self.payload = payload
        self.createdAt = createdAt
    }
}

/// What a user's security log records.
public enum SecurityEventKind: String, Sendable, Equatable, Codable, CaseIterable {
    case signInSucceeded = "sign_in.succeeded"
    case signInFailed = "sign_in.failed"
    case signInLocked = "sign_in.locked"
    case signedOut = "signed_out"
    case passwordChanged = "password.changed"
    case passwordResetRequested = "password_reset.requested"
    case passwordReset = "password.reset"
    case sessionRevoked = "session.revoked"
    case userDisabled = "user.disabled"
    case userEnabled = "user.enabled"
    /// The password was right; a second factor was asked for.
    case signInSecondFactorRequired = "sign_in.second_factor_required"
    case twoFactorEnrollmentStarted = "two_factor.enrollment_started"
    case twoFactorEnabled = "two_factor.enabled"
    case twoFactorDisabled = "two_factor.disabled"
    case twoFactorRecoveryCodesRegenerated = "two_factor.recovery_codes_regenerated"
    case twoFactorRecoveryCodeUsed = "two_factor.recovery_code_used"
    /// A wrong (or reused) code.
    case twoFactorFailed = "two_factor.failed"
    /// Too many wrong codes: the second factor waits.
    case twoFactorLocked = "two_factor.locked"
    case accountDeletionRequested = "account.deletion_requested"
    case accountRestored = "account.restored"
    /// The user created a team (and is its owner).
    case teamCreated = "team.created"
    /// The user renamed a team.
    case teamRenamed = "team.renamed"
    /// A team the user was in was deleted (for each member).
    case teamDeleted = "team.deleted"
    /// The user invited someone to a team.
    case teamInvitationCreated = "team.invitation_created"
    /// The user revoked (or replaced) an invitation.
    case teamInvitationRevoked = "team.invitation_revoked"
    /// The user joined a team.
    case teamJoined = "team.joined"
    /// The user's team role changed.
    case teamRoleChanged = "team.role_changed"
    /// The user was removed from a team.
    case teamRemoved = "team.removed"
    /// The user left a team.
    case teamLeft = "team.left"
    /// Team ownership moved to or from the user.
    case teamOwnershipTransferred = "team.ownership_transferred"
}

/// One line of a user's security log.
public struct SecurityLogEntry: Sendable, Equatable {
    public var id: Int64
    public var tenantID: TenantID
    public var userID: UserID
    public var kind: SecurityEventKind
    public var ip: String
    public var userAgent: String
    /// Short, secret-free context ("wrong password", "session se_...").
    public var detail: String
    public var createdAt: Timestamp

    public init(
        id: Int64 = 0, tenantID: TenantID, userID: UserID, kind: SecurityEventKind, ip: String, userAgent: String,
        detail: String, createdAt: Timestamp
    ) {
        self.id = id
        self.tenantID = tenantID
        self.userID = userID
        self.kind = kind
        self.ip = ip
        self.userAgent = userAgent
        self.detail = detail
        self.createdAt = createdAt
    }
}
