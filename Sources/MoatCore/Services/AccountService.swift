import Foundation
import Synchronization

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

/// Account settings.
public struct AccountConfiguration: Sendable, Equatable {
    /// How long a password-reset token lives. Default 1 hour.
    public var resetTokenLifetimeSeconds: Int64 = 3600
    /// How long a team invitation can be accepted. Default 7 days.
    public var invitationLifetimeSeconds: Int64 = 604_800
    /// Unknown emails whose failures are tracked in memory, so an unknown
    /// email locks out exactly like a known one (no enumeration by lockout).
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

/// The account domain: tenants, users, signing in and passwords. Every rule
/// lives here; handlers only translate.
public final class AccountService: Sendable {
    let store: any AccountStore
    let hasher: PasswordHasher
    let clock: any WallClock
    let configuration: AccountConfiguration
    let unknownEmails: UnknownEmailThrottle
    /// Sign-in attempts per (tenant, email), one at a time.
    let signInQueue = KeyedSerializer<String>()
    /// The owner of session validity: the session cache, the tenant
    /// directory and the liveness rule. Store writes invalidate it through
    /// their validity marks; no method here invalidates by hand.
    public let authority: SessionAuthority
    /// Live sessions for Validate, by token hash (the authority's).
    public var sessionCache: SessionCache { authority.cache }
    /// Seals and opens TOTP secrets.
    let secrets: SecretKeyring
    /// Failed sign-ins per client address, across tenants.
    let addressThrottle: AddressThrottle
    /// The device family of a user agent, for the new-device notice.
    let deviceFamily: DeviceClassifier

    /// Creates the service.
    public init(
        store: any AccountStore, hasher: PasswordHasher, clock: any WallClock = SystemWallClock(),
        configuration: AccountConfiguration = AccountConfiguration(), sessionCache: SessionCache = SessionCache(),
        secrets: SecretKeyring = .ephemeral(),
        addressFailures: any AddressFailureCounter = MemoryAddressFailureCounter(),
        deviceFamily: @escaping DeviceClassifier = DeviceFamily.verbatim
    ) {
        self.authority = SessionAuthority(store: store, clock: clock, cache: sessionCache)
        self.deviceFamily = deviceFamily
        self.addressThrottle = AddressThrottle(policy: configuration.addressThrottle, counter: addressFailures)
        self.secrets = secrets
        self.store = store
        self.hasher = hasher
        self.clock = clock
        self.configuration = configuration
        self.unknownEmails = UnknownEmailThrottle(capacity: configuration.unknownEmailThrottleEntries)
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

    // MARK: Paging

    static func pageSize(_ requested: Int) throws(DomainError) -> Int {
        if requested == 0 { return 50 }
        guard (1...500).contains(requested) else { throw .invalid(.pageSizeInvalid, "page_size must be 1 to 500") }
        return requested
    }

    static func decodePageToken(_ token: String) throws(DomainError) -> String? {
        guard !token.isEmpty else { return nil }
        guard token.utf8.count <= 400, let data = Data(base64Encoded: token), let key = String(data: data, encoding: .utf8)
        else { throw .invalid(.pageTokenInvalid, "page_token is not one this server made") }
        return key
    }

    static func encodePageToken(_ key: String?) -> String {
        key.map { Data($0.utf8).base64EncodedString() } ?? ""
    }
}

/// Failure counts of unknown emails, in memory and bounded, so that
/// lockout behaves the same whether or not an account exists.
final class UnknownEmailThrottle: Sendable {
    private struct Key: Hashable {
        let tenant: TenantID
        let email: String
    }

    private let state = Mutex([Key: Lockout]())
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func lockout(tenant: TenantID, email: String) -> Lockout {
        state.withLock { $0[Key(tenant: tenant, email: email)] ?? Lockout() }
    }

    func record(tenant: TenantID, email: String, _ lockout: Lockout) {
        state.withLock { entries in
            if entries.count >= capacity, entries[Key(tenant: tenant, email: email)] == nil {
                // Forget an arbitrary entry: the cost is one unknown email's
                // count, never a real account's.
                if let victim = entries.keys.first { entries.removeValue(forKey: victim) }
            }
            entries[Key(tenant: tenant, email: email)] = lockout
        }
    }
}
