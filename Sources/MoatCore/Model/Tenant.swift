/// A tenant's security policy. Defaults are the documented ones.
public struct TenantPolicy: Sendable, Equatable, Codable {
    /// Never below 8. Default 8.
    public var minPasswordLength: Int = 8
    /// Default 14 days.
    public var sessionIdleTimeoutSeconds: Int64 = 14 * 86400
    /// Default 30 days.
    public var sessionAbsoluteLifetimeSeconds: Int64 = 30 * 86400
    /// Default false.
    public var requireTwoFactor = false
    /// Consecutive failures before waiting. Default 5.
    public var lockoutThreshold: Int = 5
    /// First wait. Default 60 s.
    public var lockoutBaseDelaySeconds: Int64 = 60
    /// Longest wait. Default 1 h.
    public var lockoutMaxDelaySeconds: Int64 = 3600
    /// 0: no cap.
    public var maxSessionsPerUser: Int = 0

    public init() {}

    /// The absolute floor for passwords, whatever a tenant asks.
    public static let passwordFloor = 8

    /// Checks the policy's values; returns the first problem.
    public func validate() throws(DomainError) {
        guard minPasswordLength >= Self.passwordFloor else {
            throw .invalid(.policyInvalid, "min_password_length must be at least \(Self.passwordFloor)")
        }
        guard minPasswordLength <= PasswordRules.maximumLength else {
            throw .invalid(.policyInvalid, "min_password_length must be at most \(PasswordRules.maximumLength)")
        }
        guard (300...(366 * 86400)).contains(sessionIdleTimeoutSeconds) else {
            throw .invalid(.policyInvalid, "session_idle_timeout_seconds must be between 300 and 31622400")
        }
        guard (300...(3660 * 86400)).contains(sessionAbsoluteLifetimeSeconds),
            sessionAbsoluteLifetimeSeconds >= sessionIdleTimeoutSeconds
        else {
            throw .invalid(
                .policyInvalid, "session_absolute_lifetime_seconds must be at least the idle timeout and at most 10 years")
        }
        guard (1...100).contains(lockoutThreshold) else {
            throw .invalid(.policyInvalid, "lockout_threshold must be between 1 and 100")
        }
        guard (1...86400).contains(lockoutBaseDelaySeconds), (lockoutBaseDelaySeconds...86400).contains(lockoutMaxDelaySeconds)
        else {
            throw .invalid(.policyInvalid, "lockout delays must be between 1 s and 1 day, base <= max")
        }
        guard (0...1000).contains(maxSessionsPerUser) else {
            throw .invalid(.policyInvalid, "max_sessions_per_user must be between 0 and 1000")
        }
    }
}

/// A tenant's state.
public enum TenantStatus: String, Sendable, Equatable, Codable {
    case active
    /// Deletion requested: nobody signs in; purged after `purgeAfter`
    /// unless cancelled.
    case pendingDeletion = "pending_deletion"
}

/// A tenant.
public struct Tenant: Sendable, Equatable {
    public var id: TenantID
    /// Unique, `[a-z0-9-]{3,63}`, not starting or ending with `-`.
    public var slug: String
    public var name: String
    public var policy: TenantPolicy
    public var createdAt: Timestamp
    public var status: TenantStatus
    /// When a pending deletion becomes final; nil unless pending deletion.
    public var purgeAfter: Timestamp?

    public init(
        id: TenantID, slug: String, name: String, policy: TenantPolicy, createdAt: Timestamp,
        status: TenantStatus = .active, purgeAfter: Timestamp? = nil
    ) {
        self.id = id
        self.slug = slug
        self.name = name
        self.policy = policy
        self.createdAt = createdAt
        self.status = status
        self.purgeAfter = purgeAfter
    }
}
