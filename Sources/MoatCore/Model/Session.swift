/// Where a session was created, as the calling service saw it.
public struct ClientDetails: Sendable, Equatable, Codable {
    public var userAgent: String
    public var ip: String
    public var location: String
    public var deviceName: String

    public init(userAgent: String = "", ip: String = "", location: String = "", deviceName: String = "") {
        self.userAgent = userAgent
        self.ip = ip
        self.location = location
        self.deviceName = deviceName
    }
}

/// A signed-in device. The token itself is never stored, only its SHA-256.
public struct Session: Sendable, Equatable {
    public var id: SessionID
    public var tenantID: TenantID
    public var userID: UserID
    public var tokenHash: [UInt8]
    public var client: ClientDetails
    public var createdAt: Timestamp
    public var lastActiveAt: Timestamp
    /// created + absolute lifetime, fixed at creation.
    public var absoluteExpiresAt: Timestamp
    /// The idle timeout in force at creation.
    public var idleTimeoutSeconds: Int64
    public var secondFactorSatisfied: Bool
    public var revokedAt: Timestamp?
    public var revokeReason: String?

    public init(
        id: SessionID, tenantID: TenantID, userID: UserID, tokenHash: [UInt8], client: ClientDetails,
        createdAt: Timestamp, lastActiveAt: Timestamp, absoluteExpiresAt: Timestamp, idleTimeoutSeconds: Int64,
        secondFactorSatisfied: Bool, revokedAt: Timestamp? = nil, revokeReason: String? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.userID = userID
        self.tokenHash = tokenHash
        self.client = client
        self.createdAt = createdAt
        self.lastActiveAt = lastActiveAt
        self.absoluteExpiresAt = absoluteExpiresAt
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.secondFactorSatisfied = secondFactorSatisfied
        self.revokedAt = revokedAt
        self.revokeReason = revokeReason
    }

    /// When the session ends if not used again.
    public func expiresAt(lastActive: Timestamp? = nil) -> Timestamp {
        min(absoluteExpiresAt, (lastActive ?? lastActiveAt).adding(seconds: idleTimeoutSeconds))
    }

    /// Whether the session is live at `now`.
    public func isLive(at now: Timestamp, lastActive: Timestamp? = nil) -> Bool {
        revokedAt == nil && now < expiresAt(lastActive: lastActive)
    }
}

/// A password-reset request: single use, one hour.
public struct PasswordResetToken: Sendable, Equatable {
    public var tokenHash: [UInt8]
    public var tenantID: TenantID
    public var userID: UserID
    public var createdAt: Timestamp
    public var expiresAt: Timestamp
    public var usedAt: Timestamp?

    public init(
        tokenHash: [UInt8], tenantID: TenantID, userID: UserID, createdAt: Timestamp, expiresAt: Timestamp,
        usedAt: Timestamp? = nil
    ) {
        self.tokenHash = tokenHash
        self.tenantID = tenantID
        self.userID = userID
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.usedAt = usedAt
    }
}
