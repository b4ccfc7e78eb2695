import MoatCore
import MoatProto
import MoatRPC

/// `moat.v1.Users`: every method acts in the envelope's tenant.
struct UsersHandler: Moat_V1_UsersService {
    let accounts: AccountService

    private func actor(_ tenant: Tenant, _ context: RequestContext) async throws -> Principal {
        try await accounts.actor(
            tenant: tenant.id, token: context.authorization, callerIsAdministrator: context.caller.isAdmin)
    }

    func create(request: Moat_V1_CreateUserRequest, context: RequestContext) async throws -> Moat_V1_User {
        let tenant = try await accounts.tenant(context)
        guard let role = request.role.domain else { throw DomainError(.invalidArgument, .roleInvalid, "unknown role") }
        let user = try await accounts.users.createUser(
            tenant: tenant, actor: try await actor(tenant, context), email: request.email,
            password: request.password, role: role)
        return Moat_V1_User(user)
    }

    func get(request: Moat_V1_GetUserRequest, context: RequestContext) async throws -> Moat_V1_User {
        let tenant = try await accounts.tenant(context)
        return Moat_V1_User(
            try await accounts.users.user(tenant: tenant, actor: try await actor(tenant, context), id: request.userID))
    }

    func list(request: Moat_V1_ListUsersRequest, context: RequestContext) async throws -> Moat_V1_ListUsersResponse {
        let tenant = try await accounts.tenant(context)
        let page = try await accounts.users.listUsers(
            tenant: tenant, actor: try await actor(tenant, context), pageSize: Int(request.pageSize),
            pageToken: request.pageToken)
        return .with {
            $0.users = page.users.map(Moat_V1_User.init)
            $0.nextPageToken = page.nextPageToken
        }
    }

    func disable(request: Moat_V1_SetUserEnabledRequest, context: RequestContext) async throws -> Moat_V1_User {
        try await setEnabled(false, request: request, context: context)
    }

    func enable(request: Moat_V1_SetUserEnabledRequest, context: RequestContext) async throws -> Moat_V1_User {
        try await setEnabled(true, request: request, context: context)
    }

    private func setEnabled(_ enabled: Bool, request: Moat_V1_SetUserEnabledRequest, context: RequestContext)
        async throws -> Moat_V1_User
    {
        let tenant = try await accounts.tenant(context)
        return Moat_V1_User(
            try await accounts.users.setUserEnabled(
                tenant: tenant, actor: try await actor(tenant, context), id: request.userID, enabled: enabled))
    }

    func signIn(request: Moat_V1_SignInRequest, context: RequestContext) async throws -> Moat_V1_SignInResponse {
        let tenant = try await accounts.tenant(context)
        let outcome = try await accounts.signIn.beginSignIn(
            tenant: tenant, email: request.email, password: request.password,
            client: ClientDetails(request.client, metadata: context.metadata))
        switch outcome {
        case .signedIn(let result):
            return Self.signedIn(result, tenant: tenant)
        case .secondFactorRequired(let challenge):
            return .with {
                $0.secondFactorRequired = true
                $0.challenge = challenge.token
                $0.challengeExpiresAtUnix = challenge.expiresAt.seconds
                $0.user = Moat_V1_User(challenge.user)
            }
        }
    }

    func completeSignIn(request: Moat_V1_CompleteSignInRequest, context: RequestContext) async throws
        -> Moat_V1_SignInResponse
    {
        let tenant = try await accounts.tenant(context)
        let result = try await accounts.signIn.completeSignIn(
            tenant: tenant, challenge: request.challenge, code: request.code, recoveryCode: request.recoveryCode,
            client: context.clientDetails)
        return Self.signedIn(result, tenant: tenant)
    }

    private static func signedIn(_ result: SignInResult, tenant: Tenant) -> Moat_V1_SignInResponse {
        .with {
            $0.sessionToken = result.token
            $0.session = Moat_V1_Session(result.session, current: true)
            $0.session.twoFactorSetupRequired = tenant.policy.requireTwoFactor && !result.user.twoFactorEnabled
            $0.user = Moat_V1_User(result.user)
        }
    }

    func signOut(request: Moat_V1_SignOutRequest, context: RequestContext) async throws -> Moat_V1_SignOutResponse {
        try await accounts.signIn.signOut(tenant: try await accounts.tenant(context), token: context.authorization)
        return Moat_V1_SignOutResponse()
    }

    func changePassword(request: Moat_V1_ChangePasswordRequest, context: RequestContext) async throws
        -> Moat_V1_ChangePasswordResponse
    {
        let revoked = try await accounts.passwords.changePassword(
            tenant: try await accounts.tenant(context), token: context.authorization,
            currentPassword: request.currentPassword, newPassword: request.newPassword,
            revokeOtherSessions: request.revokeOtherSessions,
            client: context.clientDetails)
        return .with { $0.revokedSessions = UInt32(clamping: revoked) }
    }

    func requestPasswordReset(request: Moat_V1_RequestPasswordResetRequest, context: RequestContext) async throws
        -> Moat_V1_RequestPasswordResetResponse
    {
        try await accounts.passwords.requestPasswordReset(
            tenant: try await accounts.tenant(context), email: request.email,
            client: ClientDetails(request.client, metadata: context.metadata))
        return Moat_V1_RequestPasswordResetResponse()
    }

    func resetPassword(request: Moat_V1_ResetPasswordRequest, context: RequestContext) async throws
        -> Moat_V1_ResetPasswordResponse
    {
        let revoked = try await accounts.passwords.resetPassword(
            tenant: try await accounts.tenant(context), token: request.token, newPassword: request.newPassword,
            code: request.code)
        return .with { $0.revokedSessions = UInt32(clamping: revoked) }
    }

    func requestDeletion(request: Moat_V1_RequestAccountDeletionRequest, context: RequestContext) async throws
        -> Moat_V1_User
    {
        Moat_V1_User(
            try await accounts.deletion.requestAccountDeletion(
                tenant: try await accounts.tenant(context), token: context.authorization,
                confirmation: request.confirmation, password: request.password, code: request.code,
                client: context.clientDetails))
    }

    func restoreAccount(request: Moat_V1_RestoreAccountRequest, context: RequestContext) async throws -> Moat_V1_User {
        Moat_V1_User(
            try await accounts.deletion.restoreAccount(
                tenant: try await accounts.tenant(context), email: request.email, password: request.password,
                code: request.code, client: ClientDetails(request.client, metadata: context.metadata)))
    }

    func listSecurityEvents(request: Moat_V1_ListSecurityEventsRequest, context: RequestContext) async throws
        -> Moat_V1_ListSecurityEventsResponse
    {
        let tenant = try await accounts.tenant(context)
        let page = try await accounts.users.securityLog(
            tenant: tenant, actor: try await actor(tenant, context), userID: request.userID,
            pageSize: Int(request.pageSize), pageToken: request.pageToken)
        return .with {
            $0.events = page.entries.map(Moat_V1_SecurityEvent.init)
            $0.nextPageToken = page.nextPageToken
        }
    }
}
