import Foundation

/// A team's id, `tm_...`.
public struct TeamID: PrefixedID {
    public static let prefix = "tm_"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A team invitation's id, `iv_...` (not its token).
public struct InvitationID: PrefixedID {
    public static let prefix = "iv_"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A member's role in a team (separate from their tenant role).
public enum TeamRole: String, Sendable, Equatable, Codable, CaseIterable, Comparable {
    case member, admin, owner

    private var rank: Int {
        switch self {
        case .member: 0
        case .admin: 1
        case .owner: 2
        }
    }

    public static func < (lhs: TeamRole, rhs: TeamRole) -> Bool { lhs.rank < rhs.rank }

    /// The team role a tenant role acts with in every team of the tenant:
    /// owners as team owners, admins as team admins, members as nothing.
    public static func implied(by tenantRole: TenantRole) -> TeamRole? {
        switch tenantRole {
        case .owner: .owner
        case .admin: .admin
        case .member: nil
        }
    }
}

/// What a user may want to do in a team. Each action has one minimum
/// effective role: the Teams methods check exactly this table, and
/// `CheckPermission` answers from it.
public enum TeamAction: String, Sendable, Equatable, Codable, CaseIterable {
    /// See the team and its members.
    case view
    /// Create and change the team's content (in other services).
    case editContent = "edit_content"
    /// Delete or moderate other members' content (in other services).
    case manageContent = "manage_content"
    /// Invite, list and revoke invitations.
    case invite
    /// Change roles, remove members.
    case manageMembers = "manage_members"
    /// Rename the team.
    case rename
    /// Team settings in other services (billing, integrations).
    case manageSettings = "manage_settings"
    /// Delete the team.
    case delete
    /// Make another member the owner.
    case transferOwnership = "transfer_ownership"

    /// The least effective team role that may take this action.
    public var minimumRole: TeamRole {
        switch self {
        case .view, .editContent: .member
        case .manageContent, .invite, .manageMembers, .rename: .admin
        case .manageSettings, .delete, .transferOwnership: .owner
        }
    }

    /// Whether an effective role (nil: none) allows this action.
    public func isAllowed(for role: TeamRole?) -> Bool {
        guard let role else { return false }
        return role >= minimumRole
    }
}

/// A team inside a tenant.
public struct Team: Sendable, Equatable {
    public var id: TeamID
    public var tenantID: TenantID
    /// Trimmed, 1 to 100 characters, no control characters.
    public var name: String
    public var createdAt: Timestamp

    public init(id: TeamID, tenantID: TenantID, name: String, createdAt: Timestamp) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.createdAt = createdAt
    }

    /// The longest team name, in characters.
    public static let maximumNameLength = 100

    /// A team name as stored: trimmed; INVALID_ARGUMENT (`TEAM_NAME_INVALID`)
    /// if empty, longer than 100 characters or holding control characters.
    public static func normalizedName(_ name: String) throws(DomainError) -> String {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .invalid(.teamNameInvalid, "the team name is empty") }
        guard trimmed.count <= maximumNameLength else {
            throw .invalid(.teamNameInvalid, "the team name is longer than \(maximumNameLength) characters")
        }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalid(.teamNameInvalid, "the team name holds control characters")
        }
        return trimmed
    }
}

/// A user's membership in a team.
public struct TeamMember: Sendable, Equatable {
    public var tenantID: TenantID
    public var teamID: TeamID
    public var userID: UserID
    public var role: TeamRole
    public var joinedAt: Timestamp

    public init(tenantID: TenantID, teamID: TeamID, userID: UserID, role: TeamRole, joinedAt: Timestamp) {
        self.tenantID = tenantID
        self.teamID = teamID
        self.userID = userID
        self.role = role
        self.joinedAt = joinedAt
    }
}

/// A team and the role a user has in it (a row of "my teams").
public struct TeamMembership: Sendable, Equatable {
    public var team: Team
    public var role: TeamRole

    public init(team: Team, role: TeamRole) {
        self.team = team
        self.role = role
    }
}

/// Where a page of teams starts: after this (name, id).
public struct TeamPageKey: Sendable, Equatable {
    public var name: String
    public var id: TeamID

    public init(name: String, id: TeamID) {
        self.name = name
        self.id = id
    }

    /// Whether a team sorts after this key, in (name, id) order (UTF-8
    /// bytes, as SQLite's BINARY collation).
    public func precedes(_ team: Team) -> Bool {
        let lhs = Array(name.utf8)
        let rhs = Array(team.name.utf8)
        if lhs != rhs { return lhs.lexicographicallyPrecedes(rhs) }
        return id.rawValue < team.id.rawValue
    }
}

/// An invitation to a team. The token itself is never stored, only its
/// SHA-256. Pending while neither accepted nor revoked, and unexpired.
public struct TeamInvitation: Sendable, Equatable {
    public var id: InvitationID
    public var tenantID: TenantID
    public var teamID: TeamID
    /// Normalized email of the invitee.
    public var email: String
    public var role: TeamRole
    public var tokenHash: [UInt8]
    /// The inviting user; nil for an administrator caller.
    public var invitedBy: UserID?
    public var createdAt: Timestamp
    public var expiresAt: Timestamp
    public var acceptedAt: Timestamp?
    public var acceptedBy: UserID?
    public var revokedAt: Timestamp?

    public init(
        id: InvitationID, tenantID: TenantID, teamID: TeamID, email: String, role: TeamRole, tokenHash: [UInt8],
        invitedBy: UserID?, createdAt: Timestamp, expiresAt: Timestamp, acceptedAt: Timestamp? = nil,
        acceptedBy: UserID? = nil, revokedAt: Timestamp? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.teamID = teamID
        self.email = email
        self.role = role
        self.tokenHash = tokenHash
        self.invitedBy = invitedBy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.acceptedAt = acceptedAt
        self.acceptedBy = acceptedBy
        self.revokedAt = revokedAt
    }

    /// Neither accepted nor revoked (expiry is judged separately).
    public var isOpen: Bool { acceptedAt == nil && revokedAt == nil }

    /// Whether the invitation can still be accepted at `now`.
    public func isPending(at now: Timestamp) -> Bool { isOpen && now < expiresAt }
}
