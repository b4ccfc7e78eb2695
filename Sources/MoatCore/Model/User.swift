/// A member's role in their tenant.
public enum TenantRole: String, Sendable, Equatable, Codable, CaseIterable, Comparable {
    case member, admin, owner

    private var rank: Int {
        switch self {
        case .member: 0
        case .admin: 1
        case .owner: 2
        }
    }

    public static func < (lhs: TenantRole, rhs: TenantRole) -> Bool { lhs.rank < rhs.rank }

    /// Whether this role manages the tenant's users.
    public var managesUsers: Bool { self >= .admin }
}

/// An account's state.
public enum UserStatus: String, Sendable, Equatable, Codable {
    case active, disabled, pendingDeletion = "pending_deletion"
}

/// A user account.
public struct User: Sendable, Equatable {
    public var id: UserID
    public var tenantID: TenantID
    /// Normalized: trimmed, lowercased.
    public var email: String
    /// Argon2id PHC string. Never leaves the store and the password hasher.
    public var passwordHash: String
    public var role: TenantRole
    public var status: UserStatus
    public var createdAt: Timestamp
    public var passwordChangedAt: Timestamp
    /// Consecutive failed sign-ins since the last success.
    public var failedSignIns: Int
    /// No sign-in is checked before this time.
    public var lockedUntil: Timestamp?
    public var twoFactorEnabled: Bool
    /// When a pending deletion becomes final; nil unless pending deletion.
    public var purgeAfter: Timestamp?

    public init(
        id: UserID, tenantID: TenantID, email: String, passwordHash: String, role: TenantRole,
        status: UserStatus = .active, createdAt: Timestamp, passwordChangedAt: Timestamp? = nil,
        failedSignIns: Int = 0, lockedUntil: Timestamp? = nil, twoFactorEnabled: Bool = false,
        purgeAfter: Timestamp? = nil
    ) {
        self.purgeAfter = purgeAfter
        self.id = id
        self.tenantID = tenantID
        self.email = email
        self.passwordHash = passwordHash
        self.role = role
        self.status = status
        self.createdAt = createdAt
        self.passwordChangedAt = passwordChangedAt ?? createdAt
        self.failedSignIns = failedSignIns
        self.lockedUntil = lockedUntil
        self.twoFactorEnabled = twoFactorEnabled
    }
}
