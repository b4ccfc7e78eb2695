/// A user's active authenticator: the TOTP secret (sealed), its
/// parameters, the replay guard and the wrong-code lockout.
public struct TwoFactorCredential: Sendable, Equatable {
    public var tenantID: TenantID
    public var userID: UserID
    /// The secret, sealed by ``SecretKeyring`` (never the plain bytes).
    public var sealedSecret: SealedSecret
    /// HMAC hash name (`SHA1`), digits and period, as the authenticator was told.
    public var algorithm: String
    public var digits: Int
    public var period: Int
    public var enabledAt: Timestamp
    /// The latest time step a code was accepted for; a code of this step or
    /// an earlier one is refused (replay protection). Nil before first use.
    public var lastUsedStep: Int64?
    /// Consecutive wrong codes since the last accepted one.
    public var failedAttempts: Int
    /// No code is checked before this time.
    public var lockedUntil: Timestamp?

    public init(
        tenantID: TenantID, userID: UserID, sealedSecret: SealedSecret, algorithm: String = "SHA1", digits: Int = 6,
        period: Int = 30, enabledAt: Timestamp, lastUsedStep: Int64? = nil, failedAttempts: Int = 0,
        lockedUntil: Timestamp? = nil
    ) {
        self.tenantID = tenantID
        self.userID = userID
        self.sealedSecret = sealedSecret
        self.algorithm = algorithm
        self.digits = digits
        self.period = period
        self.enabledAt = enabledAt
        self.lastUsedStep = lastUsedStep
        self.failedAttempts = failedAttempts
        self.lockedUntil = lockedUntil
    }
}

/// An enrolment started but not yet confirmed with a code. At most one per
/// user; a new BeginEnrollment replaces it. It never affects the active
/// credential until confirmed.
public struct PendingTwoFactor: Sendable, Equatable {
    public var tenantID: TenantID
    public var userID: UserID
    public var sealedSecret: SealedSecret
    public var createdAt: Timestamp
    public var expiresAt: Timestamp

    public init(tenantID: TenantID, userID: UserID, sealedSecret: SealedSecret, createdAt: Timestamp, expiresAt: Timestamp) {
        self.tenantID = tenantID
        self.userID = userID
        self.sealedSecret = sealedSecret
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// A secret encrypted at rest: AES-256-GCM `nonce || ciphertext || tag`
/// under the key named by `keyID`.
public struct SealedSecret: Sendable, Equatable {
    public var keyID: String
    public var box: [UInt8]

    public init(keyID: String, box: [UInt8]) {
        self.keyID = keyID
        self.box = box
    }
}

/// One recovery code, stored as an Argon2id hash; usable once.
public struct RecoveryCode: Sendable, Equatable {
    public var tenantID: TenantID
    public var userID: UserID
    /// 0 to 9, the position in the set handed out.
    public var slot: Int
    /// Argon2id PHC string of the normalized code.
    public var codeHash: String
    public var usedAt: Timestamp?

    public init(tenantID: TenantID, userID: UserID, slot: Int, codeHash: String, usedAt: Timestamp? = nil) {
        self.tenantID = tenantID
        self.userID = userID
        self.slot = slot
        self.codeHash = codeHash
        self.usedAt = usedAt
    }
}

/// The half-finished sign-in of a user with 2FA: the password was right,
/// the second factor is still owed. Single use, short-lived; only the
/// token's SHA-256 is stored.
public struct SignInChallenge: Sendable, Equatable {
    public var tokenHash: [UInt8]
    public var tenantID: TenantID
    public var userID: UserID
    /// Where the sign-in came from; the session gets these details.
    public var client: ClientDetails
    public var createdAt: Timestamp
    public var expiresAt: Timestamp
    public var usedAt: Timestamp?

    public init(
        tokenHash: [UInt8], tenantID: TenantID, userID: UserID, client: ClientDetails, createdAt: Timestamp,
        expiresAt: Timestamp, usedAt: Timestamp? = nil
    ) {
        self.tokenHash = tokenHash
        self.tenantID = tenantID
        self.userID = userID
        self.client = client
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.usedAt = usedAt
    }
}
