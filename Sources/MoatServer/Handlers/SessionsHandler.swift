import MoatCore
import MoatProto
import MoatRPC

/// `moat.v1.Sessions`. Validate answers cache hits on the event loop
/// (``validateWithFastPath``) and misses from the store's thread with no
/// task; everything else runs as a task.
struct SessionsHandler: Moat_V1_SessionsService {
    let accounts: AccountService

    /// Validate with its synchronous fast path; registered over the
    /// generated entry.
    var validateWithFastPath: ServerMethod {
        let accounts = self.accounts
        return .unary(
            Moat_V1_Sessions.Method.validate,
            fastPath: { (request: Moat_V1_ValidateRequest, context) -> Moat_V1_ValidateResponse? in
                switch accounts.validateCached(tenantReference: context.tenant, token: request.token) {
                case nil: return nil
                case .success(let (validated, tenant)): return Self.response(validated, tenant)
                case .failure(let error): throw error
                }
            },
            completionPath: { (request: Moat_V1_ValidateRequest, context, completion) in
                accounts.validate(tenantReference: context.tenant, token: request.token) { result in
                    completion(result.map { Self.response($0.0, $0.1) })
                }
            },
            handler: { request, context in
                try await self.validate(request: request, context: context)
            })
    }

    func validate(request: Moat_V1_ValidateRequest, context: RequestContext) async throws -> Moat_V1_ValidateResponse {
        let (validated, tenant) = try await accounts.validate(tenantReference: context.tenant, token: request.token)
        return Self.response(validated, tenant)
    }

    static func response(_ validated: ValidatedSession, _ tenant: Tenant) -> Moat_V1_ValidateResponse {
        var response = Moat_V1_ValidateResponse()
        let session = validated.session
        response.sessionID = session.id.rawValue
        response.userID = session.userID.rawValue
        response.tenantID = tenant.id.rawValue
        response.role = Moat_V1_TenantRole(validated.role)
        response.email = validated.email
        response.secondFactorSatisfied = session.secondFactorSatisfied
        response.twoFactorSetupRequired = tenant.policy.requireTwoFactor && !validated.twoFactorEnabled
        response.expiresAtUnix = session.expiresAt().seconds
        response.absoluteExpiresAtUnix = session.absoluteExpiresAt.seconds
        return response
    }

    func list(request: Moat_V1_ListSessionsRequest, context: RequestContext) async throws -> Moat_V1_ListSessionsResponse {
        let listings = try await accounts.sessions.listSessions(tenant: try await accounts.tenant(context), token: context.authorization)
        return .with {
            $0.sessions = listings.map {
                Moat_V1_Session($0.session, current: $0.current, lastActive: $0.lastActiveAt)
            }
        }
    }

    func revoke(request: Moat_V1_RevokeSessionRequest, context: RequestContext) async throws
        -> Moat_V1_RevokeSessionResponse
    {
        try await accounts.sessions.revokeSession(
            tenant: try await accounts.tenant(context), token: context.authorization, sessionID: request.sessionID,
            client: context.clientDetails)
        return Moat_V1_RevokeSessionResponse()
    }

    func revokeOthers(request: Moat_V1_RevokeOthersRequest, context: RequestContext) async throws
        -> Moat_V1_RevokeSessionsResponse
    {
        let revoked = try await accounts.sessions.revokeOtherSessions(
            tenant: try await accounts.tenant(context), token: context.authorization, client: context.clientDetails)
        return .with { $0.revoked = UInt32(clamping: revoked) }
    }

    func signOut(request: Moat_V1_SignOutRequest, context: RequestContext) async throws -> Moat_V1_SignOutResponse {
        try await accounts.signIn.signOut(tenant: try await accounts.tenant(context), token: context.authorization)
        return Moat_V1_SignOutResponse()
    }

    func revokeAllForUser(request: Moat_V1_RevokeAllForUserRequest, context: RequestContext) async throws
        -> Moat_V1_RevokeSessionsResponse
    {
        let tenant = try await accounts.tenant(context)
        let actor = try await accounts.actor(
            tenant: tenant.id, token: context.authorization, callerIsAdministrator: context.caller.isAdmin)
        let revoked = try await accounts.sessions.revokeAllSessions(
            tenant: tenant, actor: actor, userID: request.userID, client: context.clientDetails)
        return .with { $0.revoked = UInt32(clamping: revoked) }
    }
}
