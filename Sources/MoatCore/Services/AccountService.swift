/// Account settings.
public struct AccountConfiguration: Sendable, Equatable {
    /// How long a password-reset token lives. Default 1 hour.
    public var resetTokenLifetimeSeconds: Int64 = 3600
    /// How long a team invitation can be accepted. Default 7 days.
    public var invitationLifetimeSeconds: Int64 = 604_800
    /// Unknown emails whose failures the store keeps (the least recently
    /// failed are forgotten past this), so an unknown email locks out
    /// exactly like a known one (no enumeration by lockout).
    public var unknownEmailThrottleEntries = 100_000
    /// Two-factor settings.
    public var twoFactor = TwoFactorSettings()
    /// How long a deleted account or tenant can be restored before it is
    /// purged. Default 30 days.
    public var deletionGraceSeconds: Int64 = 30 * 86400
    /// How often the daemon's purge job looks for deletions whose grace
    /// period ended. Default 1 hour.
    public var purgeIntervalSeconds: Int64 = 3600
    /// The per-address sign-in throttle (credential stuffing).
    public var addressThrottle = AddressThrottlePolicy()
    /// A sign-in from a device and network the user has not signed in from
    /// in this many days emits `session.new_device`; 0 turns it off.
    /// Default 90.
    public var newDeviceWindowDays = 90

    public init() {}
}

/// The account domain, one service per feature over a shared
/// ``AccountContext``. This type only builds the services and resolves what
/// every call needs first (the tenant, the caller, Validate); the rules live
/// in the services, and handlers only translate.
public final class AccountService: AccountFeature {
    let context: AccountContext
    /// The owner of session validity: the session cache, the tenant
    /// directory and the liveness rule. Store writes invalidate it through
    /// their validity marks; no service invalidates by hand.
    public var authority: SessionAuthority { context.authority }
    /// Live sessions for Validate, by token hash (the authority's).
    public var sessionCache: SessionCache { context.authority.cache }

    /// Tenants and their policy.
    public let tenants: TenantService
    /// Managing a tenant's users, and the security log.
    public let users: UserService
    /// Signing in and out.
    public let signIn: SignInService
    /// Changing and resetting passwords.
    public let passwords: PasswordService
    /// The Active Sessions page and session background work.
    public let sessions: SessionService
    /// TOTP two-factor.
    public let twoFactor: TwoFactorService
    /// Teams, members and invitations.
    public let teams: TeamService
    /// Deleting, restoring and purging accounts and tenants.
    public let deletion: DeletionService

    /// Creates the services over one shared context.
    public init(
        store: any AccountStore, hasher: PasswordHasher, clock: any WallClock = SystemWallClock(),
        configuration: AccountConfiguration = AccountConfiguration(), sessionCache: SessionCache = SessionCache(),
        secrets: SecretKeyring = .ephemeral(),
        addressFailures: any AddressFailureCounter = MemoryAddressFailureCounter(),
        deviceFamily: @escaping DeviceClassifier = DeviceFamily.verbatim
    ) {
        let context = AccountContext(
            store: store, hasher: hasher, clock: clock, configuration: configuration, sessionCache: sessionCache,
            secrets: secrets, addressFailures: addressFailures, deviceFamily: deviceFamily)
        let credentials = Credentials(context: context)
        self.context = context
        self.tenants = TenantService(context: context)
        self.users = UserService(context: context)
        self.signIn = SignInService(context: context, credentials: credentials)
        self.passwords = PasswordService(context: context, credentials: credentials)
        self.sessions = SessionService(context: context)
        self.twoFactor = TwoFactorService(context: context, credentials: credentials)
        self.teams = TeamService(context: context)
        self.deletion = DeletionService(context: context, credentials: credentials)
    }

    // MARK: Resolving

    /// The tenant a request names, by id or slug; NOT_FOUND if none.
    public func tenant(reference: String) async throws -> Tenant {
        try await authority.tenant(reference: reference)
    }

    /// The tenant from the directory, without the store; nil if not cached.
    func cachedTenant(reference: String) throws(DomainError) -> Tenant? {
        try authority.cachedTenant(reference: reference)
    }

    /// The live session and active user behind a token, in a tenant (see
    /// ``SessionAuthority/authenticate(tenant:token:)``).
    public func authenticate(tenant: TenantID, token: String) async throws -> (Session, User) {
        try await authority.authenticate(tenant: tenant, token: token)
    }

    /// The actor of a user-management call: the session's user if a token
    /// came, else the administrator process, else UNAUTHENTICATED.
    public func actor(tenant: TenantID, token: String, callerIsAdministrator: Bool) async throws -> Principal {
        if !token.isEmpty {
            let (session, user) = try await authenticate(tenant: tenant, token: token)
            return .user(session, user)
        }
        guard callerIsAdministrator else { throw DomainError.sessionInvalid }
        return .administrator
    }

    // MARK: Validate (the hot path)

    /// Validates a token from the caches alone, without suspending.
    ///
    /// - Returns: the answer, or nil when the store must be asked (use
    ///   ``validate(tenantReference:token:)``).
    public func validateCached(tenantReference: String, token: String) -> Result<(ValidatedSession, Tenant), DomainError>? {
        authority.validateCached(tenantReference: tenantReference, token: token)
    }

    /// Validates a token: the cached answer if there is one, else the store
    /// (see ``SessionAuthority/validate(tenantReference:token:)``).
    public func validate(tenantReference: String, token: String) async throws -> (ValidatedSession, Tenant) {
        try await authority.validate(tenantReference: tenantReference, token: token)
    }

    /// Validates a token without a task; `completion` may run on a store
    /// thread (see ``SessionAuthority/validate(tenantReference:token:completion:)``).
    public func validate(
        tenantReference: String, token: String,
        completion: @escaping @Sendable (Result<(ValidatedSession, Tenant), any Error>) -> Void
    ) {
        authority.validate(tenantReference: tenantReference, token: token, completion: completion)
    }
}
