import MoatCore
import MoatProto
import MoatRPC

extension Moat_V1_TenantPolicy {
    init(_ policy: TenantPolicy) {
        self.init()
        minPasswordLength = UInt32(clamping: policy.minPasswordLength)
        sessionIdleTimeoutSeconds = UInt64(clamping: policy.sessionIdleTimeoutSeconds)
        sessionAbsoluteLifetimeSeconds = UInt64(clamping: policy.sessionAbsoluteLifetimeSeconds)
        requireTwoFactor = policy.requireTwoFactor
        lockoutThreshold = UInt32(clamping: policy.lockoutThreshold)
        lockoutBaseDelaySeconds = UInt64(clamping: policy.lockoutBaseDelaySeconds)
        lockoutMaxDelaySeconds = UInt64(clamping: policy.lockoutMaxDelaySeconds)
        maxSessionsPerUser = UInt32(clamping: policy.maxSessionsPerUser)
    }
}

extension Moat_V1_Tenant {
    init(_ tenant: Tenant) {
        self.init()
        id = tenant.id.rawValue
        slug = tenant.slug
        name = tenant.name
        policy = Moat_V1_TenantPolicy(tenant.policy)
        createdAtUnix = tenant.createdAt.seconds
        pendingDeletion = tenant.status == .pendingDeletion
        purgeAfterUnix = tenant.purgeAfter?.seconds ?? 0
    }
}

extension Moat_V1_TenantRole {
    init(_ role: TenantRole) {
        switch role {
        case .member: self = .member
        case .admin: self = .admin
        case .owner: self = .owner
        }
    }

    /// The domain role; UNSPECIFIED means member.
    var domain: TenantRole? {
        switch self {
        case .unspecified, .member: .member
        case .admin: .admin
        case .owner: .owner
        case .UNRECOGNIZED: nil
        }
    }
}

extension Moat_V1_User {
    init(_ user: User) {
        self.init()
        id = user.id.rawValue
        tenantID = user.tenantID.rawValue
        email = user.email
        role = Moat_V1_TenantRole(user.role)
        status =
            switch user.status {
            case .active: .active
            case .disabled: .disabled
            case .pendingDeletion: .pendingDeletion
            }
        createdAtUnix = user.createdAt.seconds
        twoFactorEnabled = user.twoFactorEnabled
        passwordChangedAtUnix = user.passwordChangedAt.seconds
        purgeAfterUnix = user.purgeAfter?.seconds ?? 0
    }
}

extension Moat_V1_Session {
    init(_ session: Session, current: Bool, lastActive: Timestamp? = nil) {
        self.init()
        let agent = UserAgentInfo.parse(session.client.userAgent)
        id = session.id.rawValue
        userID = session.userID.rawValue
        deviceType = agent.deviceType.rawValue
        os = [agent.os, agent.osVersion].compactMap { $0 }.joined(separator: " ")
        browser = [agent.browser, agent.browserMajorVersion.map(String.init)].compactMap { $0 }.joined(separator: " ")
        ip = session.client.ip
        location = session.client.location
        deviceName = session.client.deviceName
        userAgent = session.client.userAgent
        createdAtUnix = session.createdAt.seconds
        let active = max(lastActive ?? session.lastActiveAt, session.lastActiveAt)
        lastActiveAtUnix = active.seconds
        expiresAtUnix = session.expiresAt(lastActive: active).seconds
        secondFactorSatisfied = session.secondFactorSatisfied
        self.current = current
    }
}

extension ClientDetails {
    init(_ client: Moat_V1_ClientDetails, metadata: [String: String]) {
        // The message wins; the envelope's metadata fills what it leaves out.
        self.init(
            userAgent: client.userAgent.isEmpty ? metadata["user-agent"] ?? "" : client.userAgent,
            ip: client.ip.isEmpty ? metadata["client-ip"] ?? "" : client.ip,
            location: client.location, deviceName: client.deviceName)
    }
}

extension RequestContext {
    /// Client details from the envelope's metadata alone (calls whose
    /// message carries none).
    var clientDetails: ClientDetails { ClientDetails(Moat_V1_ClientDetails(), metadata: metadata) }
}

extension AccountService {
    /// The tenant the envelope names.
    func tenant(_ context: RequestContext) async throws -> Tenant {
        try await tenant(reference: context.tenant)
    }
}
