import Foundation

/// What every account feature service shares: the store, the clock, the
/// password hasher, the session authority, the TOTP keyring and the
/// settings, plus the per-email sign-in state that sign-in, two-factor and
/// deletion must agree on. One instance per ``AccountService``.
final class AccountContext: Sendable {
    let store: any AccountStore
    let hasher: PasswordHasher
    let clock: any WallClock
    let configuration: AccountConfiguration
    /// The owner of session validity; store writes invalidate it through
    /// their validity marks, so no feature invalidates by hand.
    let authority: SessionAuthority
    /// Seals and opens TOTP secrets.
    let secrets: SecretKeyring
    /// Sign-in attempts per (tenant, email), one at a time.
    let signInQueue = KeyedSerializer<String>()
    /// Failed sign-ins per client address, across tenants.
    let addressThrottle: AddressThrottle
    /// The device family of a user agent, for the new-device notice.
    let deviceFamily: DeviceClassifier

    init(
        store: any AccountStore, hasher: PasswordHasher, clock: any WallClock, configuration: AccountConfiguration,
        sessionCache: SessionCache, secrets: SecretKeyring, addressFailures: any AddressFailureCounter,
        deviceFamily: @escaping DeviceClassifier
    ) {
        self.store = store
        self.hasher = hasher
        self.clock = clock
        self.configuration = configuration
        self.authority = SessionAuthority(store: store, clock: clock, cache: sessionCache)
        self.secrets = secrets
        self.addressThrottle = AddressThrottle(policy: configuration.addressThrottle, counter: addressFailures)
        self.deviceFamily = deviceFamily
    }
}

/// A feature service of the account domain: it reaches the shared pieces
/// through its context, and other features only through named collaborators.
protocol AccountFeature: Sendable {
    /// The shared context.
    var context: AccountContext { get }
}

extension AccountFeature {
    var store: any AccountStore { context.store }
    var hasher: PasswordHasher { context.hasher }
    var clock: any WallClock { context.clock }
    var configuration: AccountConfiguration { context.configuration }
    var secrets: SecretKeyring { context.secrets }
    /// Live sessions by token hash (the authority's), for activity not
    /// yet written to the store.
    var sessionCache: SessionCache { context.authority.cache }
    /// Sign-in attempts per (tenant, email), and second-factor checks per
    /// user, one at a time.
    var signInQueue: KeyedSerializer<String> { context.signInQueue }

    /// The live session and active user behind a token, in a tenant (see
    /// ``SessionAuthority/authenticate(tenant:token:)``).
    func authenticate(tenant: TenantID, token: String) async throws -> (Session, User) {
        try await context.authority.authenticate(tenant: tenant, token: token)
    }

    /// The tenant a request names, by id or slug; NOT_FOUND if none.
    func tenant(reference: String) async throws -> Tenant {
        try await context.authority.tenant(reference: reference)
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

    /// A password as typed at sign-in, NFC-normalized; longer than any valid
    /// password is INVALID_ARGUMENT (`PASSWORD_TOO_LONG`) without hashing.
    static func candidatePassword(_ password: String) throws(DomainError) -> [UInt8] {
        // A cheap bound first: nothing this long normalizes to 1024 characters.
        guard password.utf8.count <= PasswordRules.maximumLength * 18 else {
            throw .invalid(.passwordTooLong, "the password is longer than any valid password")
        }
        let normalized = password.precomposedStringWithCanonicalMapping
        guard normalized.unicodeScalars.count <= PasswordRules.maximumLength else {
            throw .invalid(.passwordTooLong, "the password is longer than any valid password")
        }
        return Array(normalized.utf8)
    }

    /// Client details cut to sane sizes: they come from callers and end up
    /// in logs and lists.
    static func bounded(_ client: ClientDetails) -> ClientDetails {
        func clip(_ value: String, _ limit: Int) -> String {
            let cleaned = String(value.unicodeScalars.filter { $0.properties.generalCategory != .control }.map(Character.init))
            return cleaned.count <= limit ? cleaned : String(cleaned.prefix(limit))
        }
        return ClientDetails(
            userAgent: clip(client.userAgent, 512), ip: clip(client.ip, 64), location: clip(client.location, 128),
            deviceName: clip(client.deviceName, 128))
    }

    /// Refuses, inside a write, to add anything to a tenant whose deletion
    /// is scheduled (the check a stale cached tenant cannot make).
    static func requireActiveTenant(_ reader: any AccountStoreReader, _ tenant: TenantID) throws {
        if let stored = try reader.tenant(id: tenant), stored.status != .active {
            throw DomainError.tenantPendingDeletion(purgeAfter: stored.purgeAfter)
        }
    }
}
