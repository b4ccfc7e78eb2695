/// Who is acting on a call that manages users.
public enum Principal: Sendable {
    /// An administrator process (SO_PEERCRED), acting with no session.
    case administrator
    /// A signed-in user.
    case user(Session, User)

    /// The acting user's id, if any.
    public var userID: UserID? {
        if case .user(_, let user) = self { return user.id }
        return nil
    }

    /// Whether the actor acts in this tenant (administrators act in any).
    public func belongs(to tenant: TenantID) -> Bool {
        switch self {
        case .administrator: true
        case .user(let session, let user): session.tenantID == tenant && user.tenantID == tenant
        }
    }

    /// Whether the actor may manage the tenant's users (administrator,
    /// owner or admin).
    public var managesUsers: Bool {
        switch self {
        case .administrator: true
        case .user(_, let user): user.role.managesUsers
        }
    }

    /// The role the actor acts with; administrators act as owners.
    public var role: TenantRole {
        switch self {
        case .administrator: .owner
        case .user(_, let user): user.role
        }
    }
}
