/// A rule of the domain said no. MoatServer maps `kind` to a wire status
/// code in one place; `reason` (always one of ``Reason``) travels as is and
/// never changes meaning. Messages never contain secrets.
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of failure; each maps to one status code.
    public enum Kind: Sendable, Equatable {
        case invalidArgument, notFound, alreadyExists, permissionDenied, unauthenticated
        case failedPrecondition, resourceExhausted, unavailable, `internal`
    }

    /// The stable machine-readable reasons of the domain: the complete list.
    /// Part of the wire contract; a renamed value is a visible change (the
    /// server's reason catalog test pins every one).
    public enum Reason: String, Sendable, CaseIterable {
        /// The account is disabled.
        case accountDisabled = "ACCOUNT_DISABLED"
        /// The account is in its deletion grace period.
        case accountPendingDeletion = "ACCOUNT_PENDING_DELETION"
        /// The user is already a member of the team.
        case alreadyMember = "ALREADY_MEMBER"
        /// The member is already a team owner.
        case alreadyOwner = "ALREADY_OWNER"
        /// A user cannot disable or enable themselves.
        case cannotDisableSelf = "CANNOT_DISABLE_SELF"
        /// The sign-in challenge is unknown, used or expired.
        case challengeInvalid = "CHALLENGE_INVALID"
        /// Disabling two-factor needs a code or the password.
        case codeOrPasswordRequired = "CODE_OR_PASSWORD_REQUIRED"
        /// A current two-factor code is required.
        case codeRequired = "CODE_REQUIRED"
        /// A deletion needs the confirmation text `DELETE`.
        case confirmationRequired = "CONFIRMATION_REQUIRED"
        /// An event consumer name is malformed.
        case consumerNameInvalid = "CONSUMER_NAME_INVALID"
        /// No event consumer has this name.
        case consumerNotFound = "CONSUMER_NOT_FOUND"
        /// The email is empty, too long or not name@domain.
        case emailInvalid = "EMAIL_INVALID"
        /// A user with this email exists in the tenant.
        case emailTaken = "EMAIL_TAKEN"
        /// The pending two-factor enrolment expired.
        case enrollmentExpired = "ENROLLMENT_EXPIRED"
        /// No two-factor enrolment is pending (or it was replaced).
        case enrollmentNotStarted = "ENROLLMENT_NOT_STARTED"
        /// The deletion grace period is over.
        case gracePeriodOver = "GRACE_PERIOD_OVER"
        /// The email or password is wrong (one answer for both).
        case invalidCredentials = "INVALID_CREDENTIALS"
        /// The invitation is for another email.
        case invitationEmailMismatch = "INVITATION_EMAIL_MISMATCH"
        /// The invitation token cannot be accepted.
        case invitationInvalid = "INVITATION_INVALID"
        /// No such pending invitation.
        case invitationNotFound = "INVITATION_NOT_FOUND"
        /// The tenant or team would be left without an owner.
        case lastOwner = "LAST_OWNER"
        /// The account is the only owner of a team with other members.
        case lastTeamOwner = "LAST_TEAM_OWNER"
        /// `max_events` is out of range.
        case maxEventsInvalid = "MAX_EVENTS_INVALID"
        /// No such member of the team.
        case memberNotFound = "MEMBER_NOT_FOUND"
        /// A tenant name is empty, too long or not printable.
        case nameInvalid = "NAME_INVALID"
        /// The caller is not a member of the team.
        case notAMember = "NOT_A_MEMBER"
        /// Nothing is scheduled for deletion.
        case notPendingDeletion = "NOT_PENDING_DELETION"
        /// Too many password hashes are waiting.
        case overloaded = "OVERLOADED"
        /// An administrator caller must name the team's owner.
        case ownerRequired = "OWNER_REQUIRED"
        /// `page_size` is out of range.
        case pageSizeInvalid = "PAGE_SIZE_INVALID"
        /// `page_token` is not one this server made.
        case pageTokenInvalid = "PAGE_TOKEN_INVALID"
        /// The password equals the email.
        case passwordIsEmail = "PASSWORD_IS_EMAIL"
        /// A password is needed to create the account.
        case passwordRequired = "PASSWORD_REQUIRED"
        /// The password is on the common-password list.
        case passwordTooCommon = "PASSWORD_TOO_COMMON"
        /// The password is over the maximum length.
        case passwordTooLong = "PASSWORD_TOO_LONG"
        /// The password is under the tenant's minimum.
        case passwordTooShort = "PASSWORD_TOO_SHORT"
        /// A tenant policy value is out of range.
        case policyInvalid = "POLICY_INVALID"
        /// The enrolment URI does not fit in a QR code.
        case qrCodeTooLong = "QR_CODE_TOO_LONG"
        /// The recovery code is wrong or used.
        case recoveryCodeInvalid = "RECOVERY_CODE_INVALID"
        /// The password-reset token cannot be used.
        case resetTokenInvalid = "RESET_TOKEN_INVALID"
        /// The tenant role is unknown.
        case roleInvalid = "ROLE_INVALID"
        /// The caller's tenant role does not allow this.
        case roleRequired = "ROLE_REQUIRED"
        /// The account needs a second factor.
        case secondFactorRequired = "SECOND_FACTOR_REQUIRED"
        /// A two-factor secret could not be sealed.
        case secretSealFailed = "SECRET_SEAL_FAILED"
        /// A stored two-factor secret cannot be decrypted.
        case secretUnreadable = "SECRET_UNREADABLE"
        /// An Ack is beyond the newest event or negative.
        case sequenceInvalid = "SEQUENCE_INVALID"
        /// The session token is not valid (one answer for every cause).
        case sessionInvalid = "SESSION_INVALID"
        /// No such session of the user.
        case sessionNotFound = "SESSION_NOT_FOUND"
        /// Too many failed sign-ins; `retry_after_seconds` says when.
        case signInLocked = "SIGN_IN_LOCKED"
        /// A tenant slug is malformed.
        case slugInvalid = "SLUG_INVALID"
        /// A tenant with this slug exists.
        case slugTaken = "SLUG_TAKEN"
        /// The team action is unknown or missing.
        case teamActionInvalid = "TEAM_ACTION_INVALID"
        /// A team name is empty, too long or holds control characters.
        case teamNameInvalid = "TEAM_NAME_INVALID"
        /// No such team (or none the caller may see).
        case teamNotFound = "TEAM_NOT_FOUND"
        /// The team role is unknown or missing.
        case teamRoleInvalid = "TEAM_ROLE_INVALID"
        /// The caller's team role does not allow this.
        case teamRoleRequired = "TEAM_ROLE_REQUIRED"
        /// No such tenant.
        case tenantNotFound = "TENANT_NOT_FOUND"
        /// The tenant is in its deletion grace period.
        case tenantPendingDeletion = "TENANT_PENDING_DELETION"
        /// The request names no tenant.
        case tenantRequired = "TENANT_REQUIRED"
        /// The two-factor code is wrong or expired.
        case totpCodeInvalid = "TOTP_CODE_INVALID"
        /// The two-factor code was used already.
        case totpCodeReused = "TOTP_CODE_REUSED"
        /// Too many wrong codes; `retry_after_seconds` says when.
        case twoFactorLocked = "TWO_FACTOR_LOCKED"
        /// Two-factor authentication is not on.
        case twoFactorNotEnabled = "TWO_FACTOR_NOT_ENABLED"
        /// `type_prefix` is too long.
        case typePrefixInvalid = "TYPE_PREFIX_INVALID"
        /// Administrator callers must name the user.
        case userIDRequired = "USER_ID_REQUIRED"
        /// No such user.
        case userNotFound = "USER_NOT_FOUND"
    }

    /// The class of failure.
    public var kind: Kind
    /// The stable reason: the raw value of one ``Reason``.
    public var reason: String
    /// A human-readable message for the caller; never a secret.
    public var message: String
    /// Extra machine-readable facts, e.g. `retry_after_seconds`.
    public var details: [String: String]

    /// Creates an error. The reason is typed, so no reason exists outside ``Reason``.
    public init(_ kind: Kind, _ reason: Reason, _ message: String, details: [String: String] = [:]) {
        self.kind = kind
        self.reason = reason.rawValue
        self.message = message
        self.details = details
    }

    /// `kind (REASON): message`.
    public var description: String { "\(kind) (\(reason)): \(message)" }
}

extension DomainError {
    static func invalid(_ reason: Reason, _ message: String) -> DomainError { .init(.invalidArgument, reason, message) }

    /// The one answer to a failed sign-in, whatever failed.
    static let invalidCredentials = DomainError(.unauthenticated, .invalidCredentials, "email or password is wrong")
    /// The one answer to a bad session token, whatever was wrong with it.
    static let sessionInvalid = DomainError(.unauthenticated, .sessionInvalid, "the session is not valid")
    static let tenantNotFound = DomainError(.notFound, .tenantNotFound, "no such tenant")
    static let userNotFound = DomainError(.notFound, .userNotFound, "no such user")
    static let tenantRequired = DomainError(.invalidArgument, .tenantRequired, "the request names no tenant")
    static let forbidden = DomainError(.permissionDenied, .roleRequired, "your role does not allow this")
}
