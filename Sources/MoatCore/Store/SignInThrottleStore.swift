/// The sign-in lockout of emails with no account, inside a transaction.
/// Part of `AccountStoreReader`.
///
/// In the store rather than in memory so that, on PostgreSQL, every moatd
/// counts the same failures (and the count survives a restart): an unknown
/// email must lock exactly like a known one, or lockout would tell an
/// attacker which emails have accounts.
public protocol SignInThrottleStoreReader {
    /// The lockout state of an email with no account in the tenant; nil if
    /// none is recorded (no failure yet, or forgotten under the capacity).
    func unknownEmailLockout(tenant: TenantID, email: String) throws -> Lockout?
}

/// Records the unknown-email lockout. Part of `AccountStoreWriter`.
public protocol SignInThrottleStoreWriter: SignInThrottleStoreReader {
    /// Stores the email's lockout state at `at`. The store keeps at most
    /// `capacity` emails: past it, the least recently failed are forgotten
    /// first (one unknown email's count is the cost, never an account's).
    /// A state of no failures and no lock forgets the email.
    func setUnknownEmailLockout(tenant: TenantID, email: String, _ lockout: Lockout, at: Timestamp, capacity: Int) throws
}
