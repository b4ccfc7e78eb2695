/// Deletion queries, inside a transaction. Part of `AccountStoreReader`.
public protocol DeletionStoreReader {
    /// Active owners of the tenant other than `except`.
    func activeOwnerCount(tenant: TenantID, except: UserID?) throws -> Int
    /// Users pending deletion whose grace ended at or before `at`, oldest
    /// due first.
    func usersDueForPurge(tenant: TenantID, at: Timestamp, limit: Int) throws -> [User]
    /// Tenants pending deletion whose grace ended at or before `at`.
    func tenantsDueForPurge(at: Timestamp, limit: Int) throws -> [Tenant]
    /// How many users the tenant has.
    func userCount(tenant: TenantID) throws -> Int
}

/// Deletion changes, inside a write transaction. Part of `AccountStoreWriter`.
public protocol DeletionStoreWriter: DeletionStoreReader {
    /// Deletes the user and every row of theirs (sessions, reset tokens,
    /// 2FA, recovery codes, challenges, security log, team memberships and
    /// invitations they sent); outbox events stay. False if not there.
    func deleteUser(tenant: TenantID, id: UserID) throws -> Bool
    /// Deletes the tenant and every row in it; outbox events stay.
    func deleteTenant(id: TenantID) throws -> Bool
    /// Revokes every live session in the tenant; returns (session, user) pairs.
    func revokeTenantSessions(tenant: TenantID, at: Timestamp, reason: String) throws -> [(SessionID, UserID)]
}
