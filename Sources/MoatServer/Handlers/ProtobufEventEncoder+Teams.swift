import MoatCore
import MoatProto
import SwiftProtobuf

extension ProtobufEventEncoder {
    /// The payload of a team event; nil for any other event.
    static func teamMessage(_ event: DomainEvent) -> (any SwiftProtobuf.Message)? {
        func id(_ user: UserID?) -> String { user?.rawValue ?? "" }
        switch event {
        case .teamCreated(let teamID, let name, let ownerID, let actorID):
            return Moat_V1_TeamCreated.with {
                $0.teamID = teamID.rawValue
                $0.name = name
                $0.ownerUserID = ownerID.rawValue
                $0.actorUserID = id(actorID)
            }
        case .teamRenamed(let teamID, let previousName, let name, let actorID):
            return Moat_V1_TeamRenamed.with {
                $0.teamID = teamID.rawValue
                $0.previousName = previousName
                $0.name = name
                $0.actorUserID = id(actorID)
            }
        case .teamDeleted(let teamID, let name, let memberIDs, let actorID):
            return Moat_V1_TeamDeleted.with {
                $0.teamID = teamID.rawValue
                $0.name = name
                $0.memberUserIds = memberIDs.map(\.rawValue)
                $0.actorUserID = id(actorID)
            }
        case .teamInvitationCreated(
            let invitationID, let teamID, let teamName, let email, let role, let token, let expiresAt, let inviterID,
            let inviterEmail):
            return Moat_V1_TeamInvitationCreated.with {
                $0.invitationID = invitationID.rawValue
                $0.teamID = teamID.rawValue
                $0.teamName = teamName
                $0.email = email
                $0.role = role.rawValue
                $0.token = token
                $0.expiresAtUnix = expiresAt.seconds
                $0.inviterUserID = id(inviterID)
                $0.inviterEmail = inviterEmail
            }
        case .teamInvitationRevoked(let invitationID, let teamID, let email, let reason, let actorID):
            return Moat_V1_TeamInvitationRevoked.with {
                $0.invitationID = invitationID.rawValue
                $0.teamID = teamID.rawValue
                $0.email = email
                $0.reason = reason
                $0.actorUserID = id(actorID)
            }
        case .teamMemberAdded(let teamID, let userID, let email, let role, let invitationID):
            return Moat_V1_TeamMemberAdded.with {
                $0.teamID = teamID.rawValue
                $0.userID = userID.rawValue
                $0.email = email
                $0.role = role.rawValue
                $0.invitationID = invitationID.rawValue
            }
        case .teamMemberRoleChanged(let teamID, let userID, let previousRole, let role, let actorID):
            return Moat_V1_TeamMemberRoleChanged.with {
                $0.teamID = teamID.rawValue
                $0.userID = userID.rawValue
                $0.previousRole = previousRole.rawValue
                $0.role = role.rawValue
                $0.actorUserID = id(actorID)
            }
        case .teamMemberRemoved(let teamID, let userID, let role, let actorID):
            return Moat_V1_TeamMemberRemoved.with {
                $0.teamID = teamID.rawValue
                $0.userID = userID.rawValue
                $0.role = role.rawValue
                $0.actorUserID = id(actorID)
            }
        case .teamMemberLeft(let teamID, let userID, let role):
            return Moat_V1_TeamMemberRemoved.with {
                $0.teamID = teamID.rawValue
                $0.userID = userID.rawValue
                $0.role = role.rawValue
                $0.actorUserID = userID.rawValue
            }
        case .teamOwnershipTransferred(let teamID, let fromUserID, let toUserID, let actorID):
            return Moat_V1_TeamOwnershipTransferred.with {
                $0.teamID = teamID.rawValue
                $0.fromUserID = id(fromUserID)
                $0.toUserID = toUserID.rawValue
                $0.actorUserID = id(actorID)
            }
        default:
            return nil
        }
    }
}
