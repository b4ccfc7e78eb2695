/// A page of a user's security log.
public struct SecurityLogPage: Sendable, Equatable {
    /// Newest first.
    public var entries: [SecurityLogEntry]
    /// Empty on the last page.
    public var nextPageToken: String
}

extension UserService {
    /// A user's security log, newest first, a page at a time.
    ///
    /// A signed-in user reads their own (`userID` empty or their id); tenant
    /// owners and admins, and administrator callers, read any member's.
    /// A member asking for someone else is PERMISSION_DENIED (`ROLE_REQUIRED`)
    /// whether or not that user exists; a user not in the tenant (another
    /// tenant's id included) is NOT_FOUND (`USER_NOT_FOUND`).
    public func securityLog(tenant: Tenant, actor: Principal, userID: String, pageSize: Int, pageToken: String)
        async throws -> SecurityLogPage
    {
        guard actor.belongs(to: tenant.id) else { throw DomainError.forbidden }
        let target: UserID
        if userID.isEmpty {
            guard let own = actor.userID else {
                throw DomainError.invalid(.userIDRequired, "administrator callers must name the user")
            }
            target = own
        } else {
            guard let id = UserID(userID) else {
                // Same answers as a well-formed id: members may not ask.
                guard actor.managesUsers else { throw DomainError.forbidden }
                throw DomainError.userNotFound
            }
            guard actor.managesUsers || actor.userID == id else { throw DomainError.forbidden }
            target = id
        }
        let size = try Self.pageSize(pageSize)
        let before = try Self.decodeLogPageToken(pageToken)
        let (user, page) = try await store.read { reader in
            (
                try reader.user(tenant: tenant.id, id: target),
                try reader.securityLog(tenant: tenant.id, user: target, beforeID: before, limit: size + 1)
            )
        }
        guard user != nil else { throw DomainError.userNotFound }
        let entries = Array(page.prefix(size))
        let next = page.count > size ? entries.last.map { Self.encodePageToken(String($0.id)) } ?? "" : ""
        return SecurityLogPage(entries: entries, nextPageToken: next)
    }

    /// A log page token holds the id to continue below.
    static func decodeLogPageToken(_ token: String) throws(DomainError) -> Int64? {
        guard let key = try decodePageToken(token) else { return nil }
        guard let id = Int64(key), id > 0 else {
            throw .invalid(.pageTokenInvalid, "page_token is not one this server made")
        }
        return id
    }
}
