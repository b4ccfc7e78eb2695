/// Why a session ended: the `reason` of every `session.revoked` event and the
/// `revoke_reason` the store records. Part of the event contract: consumers
/// switch on these values, so a renamed case is a visible change (the
/// server's reason catalog test pins every one).
public enum SessionRevocationReason: String, Sendable, CaseIterable {
    /// The user signed out (`Users.SignOut`).
    case signOut = "sign_out"
    /// The user revoked this one session (`Sessions.Revoke`).
    case revoked
    /// The user signed out every other session (`Sessions.RevokeOthers`).
    case revokedOthers = "revoked_others"
    /// An owner, admin or administrator caller signed the user out everywhere.
    case revokedByAdmin = "revoked_by_admin"
    /// The user changed their password and asked to end the other sessions.
    case passwordChanged = "password_changed"
    /// A password reset ended every session.
    case passwordReset = "password_reset"
    /// The user was disabled.
    case userDisabled = "user_disabled"
    /// A new session pushed the oldest out (the tenant's session cap).
    case sessionCap = "session_cap"
    /// The account entered its deletion grace period.
    case accountDeletion = "account_deletion"
    /// The tenant entered its deletion grace period.
    case tenantDeletion = "tenant_deletion"
}

/// Why a pending team invitation was revoked: the `reason` of every
/// `team.invitation_revoked` event. Part of the event contract, pinned with
/// the other reasons.
public enum InvitationRevocationReason: String, Sendable, CaseIterable {
    /// A team admin or owner revoked it (`Teams.RevokeInvitation`).
    case revoked
    /// The same email was invited again.
    case replaced
    /// The inviter left, was removed, or was demoted below what it grants.
    case inviterRoleChanged = "inviter_role_changed"
}
