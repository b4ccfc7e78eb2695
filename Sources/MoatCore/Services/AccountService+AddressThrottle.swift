extension AccountService {
    /// Refuses, before anything is looked up or hashed, an attempt from an
    /// address past the per-address failure limit (RESOURCE_EXHAUSTED
    /// `ADDRESS_THROTTLED` with `retry_after_seconds`).
    func checkAddress(tenant: Tenant, client: ClientDetails, at now: Timestamp) async throws {
        if let wait = try await addressThrottle.retryAfter(ip: client.ip, tenant: tenant.id, at: now) {
            throw AddressThrottle.throttledError(retryAfter: wait)
        }
    }

    /// Counts a failed sign-in against the client's address.
    func countAddressFailure(tenant: Tenant, client: ClientDetails) async throws {
        try await addressThrottle.recordFailure(ip: client.ip, tenant: tenant.id, at: clock.now())
    }
}
