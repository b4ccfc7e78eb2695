/// The sign-in lockout rule, as a pure function of the failure count.
///
/// After `threshold` consecutive failures the account waits: the base
/// delay, doubling with each further failure, never more than the maximum.
/// A wait always ends, so an attacker can slow an account down but never
/// lock its owner out for good; a success resets the count.
public struct Lockout: Sendable, Equatable {
    public var failures: Int
    public var lockedUntil: Timestamp?

    public init(failures: Int = 0, lockedUntil: Timestamp? = nil) {
        self.failures = failures
        self.lockedUntil = lockedUntil
    }

    /// Seconds left to wait at `now`, or nil if a sign-in may be checked.
    public func retryAfter(at now: Timestamp) -> Int64? {
        guard let lockedUntil, now < lockedUntil else { return nil }
        return max(1, (lockedUntil.milliseconds - now.milliseconds + 999) / 1000)
    }

    /// The state after one more failure at `now`.
    public func failed(at now: Timestamp, policy: TenantPolicy) -> Lockout {
        let failures = self.failures + 1
        guard failures >= policy.lockoutThreshold else { return Lockout(failures: failures, lockedUntil: nil) }
        let doublings = min(failures - policy.lockoutThreshold, 30)
        let delay = min(policy.lockoutBaseDelaySeconds << Int64(doublings), policy.lockoutMaxDelaySeconds)
        return Lockout(failures: failures, lockedUntil: now.adding(seconds: delay))
    }

    /// The error a locked sign-in gets.
    public static func lockedError(retryAfter seconds: Int64) -> DomainError {
        DomainError(
            .resourceExhausted, .signInLocked, "too many failed sign-ins; try again in \(seconds) s",
            details: ["retry_after_seconds": "\(seconds)"])
    }
}
