import MoatCore
import MoatProto
import MoatRPC

/// `moat.v1.Tenants` (administrator callers; the router checks that).
struct TenantsHandler: Moat_V1_TenantsService {
    let accounts: AccountService

    func create(request: Moat_V1_CreateTenantRequest, context: RequestContext) async throws
        -> Moat_V1_CreateTenantResponse
    {
        let (tenant, owner) = try await accounts.tenants.createTenant(
            slug: request.slug, name: request.name, ownerEmail: request.ownerEmail,
            ownerPassword: request.ownerPassword)
        return .with {
            $0.tenant = Moat_V1_Tenant(tenant)
            $0.owner = Moat_V1_User(owner)
        }
    }

    func get(request: Moat_V1_GetTenantRequest, context: RequestContext) async throws -> Moat_V1_Tenant {
        Moat_V1_Tenant(try await accounts.tenant(reference: request.tenant.isEmpty ? context.tenant : request.tenant))
    }

    func list(request: Moat_V1_ListTenantsRequest, context: RequestContext) async throws -> Moat_V1_ListTenantsResponse {
        let page = try await accounts.tenants.listTenants(pageSize: Int(request.pageSize), pageToken: request.pageToken)
        return .with {
            $0.tenants = page.tenants.map(Moat_V1_Tenant.init)
            $0.nextPageToken = page.nextPageToken
        }
    }

    func updatePolicy(request: Moat_V1_UpdatePolicyRequest, context: RequestContext) async throws
        -> Moat_V1_TenantPolicy
    {
        let policy = try await accounts.tenants.updatePolicy(
            tenant: request.tenant.isEmpty ? context.tenant : request.tenant
        ) { policy in
            if request.hasMinPasswordLength { policy.minPasswordLength = Int(request.minPasswordLength) }
            if request.hasSessionIdleTimeoutSeconds {
                policy.sessionIdleTimeoutSeconds = Int64(clamping: request.sessionIdleTimeoutSeconds)
            }
            if request.hasSessionAbsoluteLifetimeSeconds {
                policy.sessionAbsoluteLifetimeSeconds = Int64(clamping: request.sessionAbsoluteLifetimeSeconds)
            }
            if request.hasRequireTwoFactor { policy.requireTwoFactor = request.requireTwoFactor }
            if request.hasLockoutThreshold { policy.lockoutThreshold = Int(request.lockoutThreshold) }
            if request.hasLockoutBaseDelaySeconds {
                policy.lockoutBaseDelaySeconds = Int64(clamping: request.lockoutBaseDelaySeconds)
            }
            if request.hasLockoutMaxDelaySeconds {
                policy.lockoutMaxDelaySeconds = Int64(clamping: request.lockoutMaxDelaySeconds)
            }
            if request.hasMaxSessionsPerUser { policy.maxSessionsPerUser = Int(request.maxSessionsPerUser) }
        }
        return Moat_V1_TenantPolicy(policy)
    }

    func requestDeletion(request: Moat_V1_RequestTenantDeletionRequest, context: RequestContext) async throws
        -> Moat_V1_Tenant
    {
        Moat_V1_Tenant(
            try await accounts.deletion.requestTenantDeletion(
                tenant: request.tenant.isEmpty ? context.tenant : request.tenant, confirmation: request.confirmation))
    }

    func cancelDeletion(request: Moat_V1_CancelTenantDeletionRequest, context: RequestContext) async throws
        -> Moat_V1_Tenant
    {
        Moat_V1_Tenant(
            try await accounts.deletion.cancelTenantDeletion(tenant: request.tenant.isEmpty ? context.tenant : request.tenant))
    }
}
