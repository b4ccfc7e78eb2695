import Foundation
import Synchronization

/// Who is acting on a call that manages users.
public enum Actor: Sendable {
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
    /// Live sessions for Validate, by token hash.
    public let sessionCache: SessionCache
    /// Tenants by id and slug, so the hot path resolves its tenant without
    /// the store. Refreshed by every tenant change.
    let tenants = TenantDirectory()
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
        self.deviceFamily = deviceFamily
        self.addressThrottle = AddressThrottle(policy: configuration.addressThrottle, counter: addressFailures)
        self.sessionCache = sessionCache
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
        if let cached = try cachedTenant(reference: reference) { return cached }
        let reference = reference.trimmingCharacters(in: .whitespaces).lowercased()
        let epoch = tenants.epoch
        let tenant = try await store.read { reader in
            if let id = TenantID(reference) { return try reader.tenant(id: id) }
            return try reader.tenant(slug: reference)
        }
        guard let tenant else { throw DomainError.tenantNotFound }
        tenants.insert(tenant, loadedAt: epoch)
        return tenant
    }

    /// The tenant from the directory, without the store; nil if not cached.
    func cachedTenant(reference: String) throws(DomainError) -> Tenant? {
        guard !reference.isEmpty, reference.contains(where: { !$0.isWhitespace }) else { throw DomainError.tenantRequired }
        guard reference.utf8.count <= 128 else { throw DomainError.tenantNotFound }
        return tenants.lookup(reference)
    }

    /// The live session and active user behind a token, in a tenant.
    /// Anything wrong (unknown, revoked, expired, other tenant, disabled
    /// user) is the same UNAUTHENTICATED `SESSION_INVALID`. Judges idle
    /// expiry with the activity not yet flushed, exactly as Validate does,
    /// and records this call as activity.
    public func authenticate(tenant: TenantID, token: String) async throws -> (Session, User) {
        guard Self.plausibleToken(token) else { throw DomainError.sessionInvalid }
        let hash = OpaqueToken.hash(token)
        let found = try await store.read { reader -> (Session, User)? in
            guard let session = try reader.session(tenant: tenant, tokenHash: hash), session.revokedAt == nil,
                let user = try reader.user(tenant: tenant, id: session.userID), user.status == .active
            else { return nil }
            return (session, user)
        }
        let now = clock.now()
        guard let (foundSession, user) = found else { throw DomainError.sessionInvalid }
        var session = foundSession
        if let pending = sessionCache.pendingLastActive(session.id), pending > session.lastActiveAt {
            session.lastActiveAt = pending
        }
        guard session.isLive(at: now) else { throw DomainError.sessionInvalid }
        sessionCache.touch(tenant: tenant, session: session.id, at: now)
        session.lastActiveAt = max(session.lastActiveAt, now)
        return (session, user)
    }

    /// The actor of a user-management call: the session's user if a token
    /// came, else the administrator process, else UNAUTHENTICATED.
    public func actor(tenant: TenantID, token: String, callerIsAdministrator: Bool) async throws -> Actor {
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
        guard (1...500).contains(requested) else { throw .invalid("PAGE_SIZE_INVALID", "page_size must be 1 to 500") }
        return requested
    }

    static func decodePageToken(_ token: String) throws(DomainError) -> String? {
        guard !token.isEmpty else { return nil }
        guard token.utf8.count <= 400, let data = Data(base64Encoded: token), let key = String(data: data, encoding: .utf8)
        else { throw .invalid("PAGE_TOKEN_INVALID", "page_token is not one this server made") }
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
