import MoatProto
import SwiftProtobuf

/// The payload message of each event type, by full protobuf name, so a
/// generic consumer can decode `Event.payload` (`moat.v1.PasswordChanged`).
///
/// Add a row with every new `DomainEvent` case (and its message in
/// ProtobufEventEncoder); EventPayloadTypeTests checks that the encoder's
/// message for each event is the one named here.
enum EventPayloadTypes {
    static let byEventType: [String: String] = [
        "tenant.created": Moat_V1_TenantCreated.protoMessageName,
        "tenant.policy_updated": Moat_V1_TenantPolicyUpdated.protoMessageName,
        "user.created": Moat_V1_UserCreated.protoMessageName,
        "user.disabled": Moat_V1_UserStatusChanged.protoMessageName,
        "user.enabled": Moat_V1_UserStatusChanged.protoMessageName,
        "password.changed": Moat_V1_PasswordChanged.protoMessageName,
        "password_reset.requested": Moat_V1_PasswordResetRequested.protoMessageName,
        "password.reset": Moat_V1_PasswordReset.protoMessageName,
        "password_reset.unknown_email": Moat_V1_PasswordResetUnknownEmail.protoMessageName,
        "session.revoked": Moat_V1_SessionRevoked.protoMessageName,
        "session.new_device": Moat_V1_SessionNewDevice.protoMessageName,
        "two_factor.enabled": Moat_V1_TwoFactorEnabled.protoMessageName,
        "two_factor.disabled": Moat_V1_TwoFactorDisabled.protoMessageName,
        "two_factor.recovery_codes_regenerated": Moat_V1_TwoFactorRecoveryCodesRegenerated.protoMessageName,
        "two_factor.recovery_code_used": Moat_V1_TwoFactorRecoveryCodeUsed.protoMessageName,
        "account.deletion_scheduled": Moat_V1_AccountDeletionScheduled.protoMessageName,
        "account.restored": Moat_V1_AccountRestored.protoMessageName,
        "account.purged": Moat_V1_AccountPurged.protoMessageName,
        "tenant.deletion_scheduled": Moat_V1_TenantDeletionScheduled.protoMessageName,
        "tenant.deletion_cancelled": Moat_V1_TenantDeletionCancelled.protoMessageName,
        "tenant.purged": Moat_V1_TenantPurged.protoMessageName,
        "team.created": Moat_V1_TeamCreated.protoMessageName,
        "team.renamed": Moat_V1_TeamRenamed.protoMessageName,
        "team.deleted": Moat_V1_TeamDeleted.protoMessageName,
        "team.invitation_created": Moat_V1_TeamInvitationCreated.protoMessageName,
        "team.invitation_revoked": Moat_V1_TeamInvitationRevoked.protoMessageName,
        "team.member_added": Moat_V1_TeamMemberAdded.protoMessageName,
        "team.member_role_changed": Moat_V1_TeamMemberRoleChanged.protoMessageName,
        "team.member_removed": Moat_V1_TeamMemberRemoved.protoMessageName,
        "team.member_left": Moat_V1_TeamMemberRemoved.protoMessageName,
        "team.ownership_transferred": Moat_V1_TeamOwnershipTransferred.protoMessageName,
    ]

    /// The payload's message name; empty for a type this build does not know.
    static func name(forEventType type: String) -> String { byEventType[type] ?? "" }
}
