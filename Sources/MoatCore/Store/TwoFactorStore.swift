/// Two-factor queries, inside a transaction. Part of `AccountStoreReader`.
public protocol TwoFactorStoreReader {
    /// The user's active authenticator, if 2FA is on.
    func twoFactor(tenant: TenantID, user: UserID) throws -> TwoFactorCredential?
    /// The user's unconfirmed enrolment (expired ones included; callers
    /// judge expiry with their clock).
    func pendingTwoFactor(tenant: TenantID, user: UserID) throws -> PendingTwoFactor?
    /// The user's recovery codes, used ones included, by slot.
    func recoveryCodes(tenant: TenantID, user: UserID) throws -> [RecoveryCode]
    func signInChallenge(tenant: TenantID, tokenHash: [UInt8]) throws -> SignInChallenge?
}

/// Two-factor changes, inside a write transaction. Part of `AccountStoreWriter`.
public protocol TwoFactorStoreWriter: TwoFactorStoreReader {
    /// Sets the user's authenticator, replacing any (and its replay guard
    /// and failure count with the credential's own).
    func setTwoFactor(_ credential: TwoFactorCredential) throws
    /// Removes the authenticator, the pending enrolment and every recovery
    /// code of the user; false if 2FA was not on.
    func deleteTwoFactor(tenant: TenantID, user: UserID) throws -> Bool

    /// Records that a code of `step` was accepted, only if `step` is later
    /// than the last accepted one; resets the failure count. Atomic: of two
    /// callers with the same step exactly one gets true.
    func advanceTwoFactorStep(tenant: TenantID, user: UserID, step: Int64) throws -> Bool
    /// Stores the wrong-code count and lockout.
    func setTwoFactorAttempts(tenant: TenantID, user: UserID, failures: Int, lockedUntil: Timestamp?) throws

    /// Sets the user's pending enrolment, replacing any.
    func setPendingTwoFactor(_ pending: PendingTwoFactor) throws
    func deletePendingTwoFactor(tenant: TenantID, user: UserID) throws

    /// Replaces every recovery code of the user.
    func replaceRecoveryCodes(tenant: TenantID, user: UserID, with codes: [RecoveryCode]) throws
    /// Marks the code in `slot` used if it is unused; false otherwise. Atomic.
    func useRecoveryCode(tenant: TenantID, user: UserID, slot: Int, at: Timestamp) throws -> Bool

    func insert(_ challenge: SignInChallenge) throws
    /// Marks the challenge used if it is unused and unexpired at `at`, and
    /// returns it; nil otherwise. Atomic: one challenge, one session.
    func consumeSignInChallenge(tenant: TenantID, tokenHash: [UInt8], at: Timestamp) throws -> SignInChallenge?
    /// Deletes the tenant's challenges and pending enrolments that expired
    /// before `before`; returns how many rows went.
    func deleteExpiredTwoFactorState(tenant: TenantID, before: Timestamp) throws -> Int
}
