import Foundation
import Synchronization

/// The per-address sign-in throttle's settings (daemon-wide: an address
/// stuffing credentials does so across every tenant).
public struct AddressThrottlePolicy: Sendable, Equatable {
    /// Failed sign-ins one address may make in a window before its further
    /// attempts are refused unchecked; 0 turns the throttle off. Default 20.
    public var failureLimit = 20
    /// The window, counted from the window's first failure. Default 15 minutes.
    public var windowSeconds: Int64 = 900

    /// Creates the policy.
    public init(failureLimit: Int = 20, windowSeconds: Int64 = 900) {
        self.failureLimit = failureLimit
        self.windowSeconds = windowSeconds
    }
}

/// One address's failures in its current window.
public struct AddressFailureWindow: Sendable, Equatable {
    /// When the window's first failure happened.
    public var startedAt: Timestamp
    /// Failures since then.
    public var failures: Int

    /// Creates a window.
    public init(startedAt: Timestamp, failures: Int) {
        self.startedAt = startedAt
        self.failures = failures
    }
}

/// Where failed sign-ins per address are counted. Small on purpose, so a
/// shared backend (one table in PostgreSQL) can count for many daemons.
/// Keys are opaque strings (``AddressThrottle/key(for:tenant:)``).
public protocol AddressFailureCounter: Sendable {
    /// The key's window if one is open at `now` (started less than
    /// `windowSeconds` ago), else nil.
    func window(key: String, at now: Timestamp, windowSeconds: Int64) async throws -> AddressFailureWindow?
    /// Counts one failure at `now`, atomically: into the open window, or
    /// into a new one starting at `now`. Returns the window after it.
    @discardableResult
    func recordFailure(key: String, at now: Timestamp, windowSeconds: Int64) async throws -> AddressFailureWindow
}

/// The throttle rule over a counter: which bucket an attempt counts in, and
/// whether it may be checked at all.
///
/// Buckets: an IPv4 address; the /64 of an IPv6 address. A missing or
/// unparseable `client-ip` is no way around the limit: all such attempts
/// in one tenant share one bucket (`unknown/<tenant id>`), so a caller that
/// passes no address gets the limit per tenant rather than no limit.
public struct AddressThrottle: Sendable {
    /// The settings.
    public let policy: AddressThrottlePolicy
    let counter: any AddressFailureCounter

    /// Creates the throttle.
    public init(policy: AddressThrottlePolicy, counter: any AddressFailureCounter) {
        self.policy = policy
        self.counter = counter
    }

    /// The bucket an attempt with this client IP counts in.
    public static func key(for ip: String, tenant: TenantID) -> String {
        if let address = ClientAddress(ip.trimmingCharacters(in: .whitespaces)) { return address.throttleKey }
        return "unknown/\(tenant.rawValue)"
    }

    /// Seconds the address must wait, or nil if the attempt may be checked.
    public func retryAfter(ip: String, tenant: TenantID, at now: Timestamp) async throws -> Int64? {
        guard policy.failureLimit > 0 else { return nil }
        let key = Self.key(for: ip, tenant: tenant)
        guard let window = try await counter.window(key: key, at: now, windowSeconds: policy.windowSeconds),
            window.failures >= policy.failureLimit
        else { return nil }
        let ends = window.startedAt.adding(seconds: policy.windowSeconds)
        return max(1, (ends.milliseconds - now.milliseconds + 999) / 1000)
    }

    /// Counts a failed sign-in from the address.
    public func recordFailure(ip: String, tenant: TenantID, at now: Timestamp) async throws {
        guard policy.failureLimit > 0 else { return }
        try await counter.recordFailure(
            key: Self.key(for: ip, tenant: tenant), at: now, windowSeconds: policy.windowSeconds)
    }

    /// The error a throttled attempt gets.
    public static func throttledError(retryAfter seconds: Int64) -> DomainError {
        DomainError(
            .resourceExhausted, .addressThrottled,
            "too many failed sign-ins from this address; try again in \(seconds) s",
            details: ["retry_after_seconds": "\(seconds)"])
    }
}

/// Counts address failures in memory, bounded: past `capacity` addresses
/// the ended windows go first, then the fewest failures (an address the
/// throttle holds is the last thing forgotten). Lost on restart; the
/// daemon uses the store's counter.
public final class MemoryAddressFailureCounter: AddressFailureCounter {
    private let state = Mutex([String: AddressFailureWindow]())
    private let capacity: Int

    /// Creates a counter holding at most `capacity` addresses.
    public init(capacity: Int = 100_000) { self.capacity = max(1, capacity) }

    /// Addresses held now.
    public var count: Int { state.withLock { $0.count } }

    /// The open window of `key`, if any.
    public func window(key: String, at now: Timestamp, windowSeconds: Int64) -> AddressFailureWindow? {
        state.withLock { entries in
            guard let window = entries[key], Self.isOpen(window, at: now, windowSeconds) else { return nil }
            return window
        }
    }

    /// Counts one failure.
    @discardableResult
    public func recordFailure(key: String, at now: Timestamp, windowSeconds: Int64) -> AddressFailureWindow {
        state.withLock { entries in
            if let window = entries[key], Self.isOpen(window, at: now, windowSeconds) {
                let next = AddressFailureWindow(startedAt: window.startedAt, failures: window.failures + 1)
                entries[key] = next
                return next
            }
            if entries[key] == nil, entries.count >= capacity {
                entries = entries.filter { Self.isOpen($0.value, at: now, windowSeconds) }
                if entries.count >= capacity, let victim = entries.min(by: { $0.value.failures < $1.value.failures }) {
                    entries.removeValue(forKey: victim.key)
                }
            }
            let fresh = AddressFailureWindow(startedAt: now, failures: 1)
            entries[key] = fresh
            return fresh
        }
    }

    static func isOpen(_ window: AddressFailureWindow, at now: Timestamp, _ windowSeconds: Int64) -> Bool {
        now < window.startedAt.adding(seconds: windowSeconds)
    }
}
