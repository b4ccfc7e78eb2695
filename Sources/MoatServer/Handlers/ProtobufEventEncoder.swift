public import MoatCore
import MoatProto
import SwiftProtobuf

/// Encodes domain events as the messages of proto/moat/v1/events.proto.
public struct ProtobufEventEncoder: EventEncoder {
    public init() {}

    public func encode(_ event: DomainEvent) -> [UInt8] {
        let message: any SwiftProtobuf.Message
        switch event {
        case .tenantCreated(let tenantID, let slug, let name, let ownerID, let ownerEmail):
            message = Moat_V1_TenantCreated.with {
                $0.tenantID = tenantID.rawValue
                $0.slug = slug
                $0.name = name
                $0.ownerUserID = ownerID.rawValue
                $0.ownerEmail = ownerEmail
            }
        case .tenantPolicyUpdated(let tenantID):
            message = Moat_V1_TenantPolicyUpdated.with { $0.tenantID = tenantID.rawValue }
        case .userCreated(let userID, let email, let role):
            message = Moat_V1_UserCreated.with {
                $0.userID = userID.rawValue
                $0.email = email
                $0.role = role.rawValue
            }
        case .userDisabled(let userID, let email), .userEnabled(let userID, let email):
            message = Moat_V1_UserStatusChanged.with {
                $0.userID = userID.rawValue
                $0.email = email
            }
        case .passwordChanged(let userID, let email, let ip, let userAgent, let revoked):
            message = Moat_V1_PasswordChanged.with {
                $0.userID = userID.rawValue
                $0.email = email
                $0.ip = ip
                $0.userAgent = userAgent
                $0.revokedSessions = UInt32(clamping: revoked)
            }
        case .passwordResetRequested(let userID, let email, let token, let expiresAt, let ip, let userAgent):
            message = Moat_V1_PasswordResetRequested.with {
                $0.userID = userID.rawValue
                $0.email = email
                $0.token = token
                $0.expiresAtUnix = expiresAt.seconds
                $0.ip = ip
                $0.userAgent = userAgent
            }
        case .passwordReset(let userID, let email, let revoked):
            message = Moat_V1_PasswordReset.with {
                $0.userID = userID.rawValue
                $0.email = email
                $0.revokedSessions = UInt32(clamping: revoked)
            }
        case .passwordResetUnknownEmail(let email, let ip):
            message = Moat_V1_PasswordResetUnknownEmail.with {
                $0.email = email
                $0.ip = ip
            }
        case .sessionRevoked(let sessionID, let userID, let reason):
            message = Moat_V1_SessionRevoked.with {
                $0.sessionID = sessionID.rawValue
                $0.userID = userID.rawValue
                $0.reason = reason
            }
        case .twoFactorEnabled(let userID, let email, let replaced):
            message = Moat_V1_TwoFactorEnabled.with {
                $0.userID = userID.rawValue
                $0.email = email
                $0.replaced = replaced
            }
        case .twoFactorDisabled(let userID, let email, let method):
            message = Moat_V1_TwoFactorDisabled.with {
                $0.userID = userID.rawValue
                $0.email = email
                $0.method = method
            }
        case .twoFactorRecoveryCodesRegenerated(let userID, let email):
            message = Moat_V1_TwoFactorRecoveryCodesRegenerated.with {
                $0.userID = userID.rawValue
                $0.email = email
            }
        case .twoFactorRecoveryCodeUsed(let userID, let email, let remaining):
            message = Moat_V1_TwoFactorRecoveryCodeUsed.with {
                $0.userID = userID.rawValue
                $0.email = email
                $0.remaining = UInt32(clamping: remaining)
            }
        case .accountDeletionScheduled(let userID, let email, let purgeAfter):
            message = Moat_V1_AccountDeletionScheduled.with {
                $0.userID = userID.rawValue
                $0.email = email
                $0.purgeAfterUnix = purgeAfter.seconds
            }
        case .accountRestored(let userID, let email):
            message = Moat_V1_AccountRestored.with {
                $0.userID = userID.rawValue
                $0.email = email
            }
        case .accountPurged(let userID, let tenantID, let email):
            message = Moat_V1_AccountPurged.with {
                $0.userID = userID.rawValue
                $0.tenantID = tenantID.rawValue
                $0.email = email
                $0.delete = Self.purgeTargets
            }
        case .tenantDeletionScheduled(let tenantID, let slug, let name, let purgeAfter):
            message = Moat_V1_TenantDeletionScheduled.with {
                $0.tenantID = tenantID.rawValue
                $0.slug = slug
                $0.name = name
                $0.purgeAfterUnix = purgeAfter.seconds
            }
        case .tenantDeletionCancelled(let tenantID, let slug, let name):
            message = Moat_V1_TenantDeletionCancelled.with {
                $0.tenantID = tenantID.rawValue
                $0.slug = slug
                $0.name = name
            }
        case .tenantPurged(let tenantID, let slug, let name, let users):
            message = Moat_V1_TenantPurged.with {
                $0.tenantID = tenantID.rawValue
                $0.slug = slug
                $0.name = name
                $0.users = UInt32(clamping: users)
                $0.delete = Self.purgeTargets
            }
        case .teamCreated, .teamRenamed, .teamDeleted, .teamInvitationCreated, .teamInvitationRevoked, .teamMemberAdded,
            .teamMemberRoleChanged, .teamMemberRemoved, .teamMemberLeft, .teamOwnershipTransferred:
            guard let team = Self.teamMessage(event) else { return [] }
            message = team
        }
        return (try? message.serializedBytes()) ?? []
    }

    /// Everything downstream holds for an account or tenant.
    static let purgeTargets: [Moat_V1_PurgeTarget] = [
        .businessData, .callRecordingsAndTranscripts, .receptionistConfiguration, .phoneNumber, .billingSubscription,
    ]
}
