/// A session as the "Active Sessions" page shows it.
public struct SessionListing: Sendable {
    public var session: Session
    /// Including activity not yet written to the store.
    public var lastActiveAt: Timestamp
    /// The session that made the call.
    public var current: Bool
}

/// The Active Sessions page (list, revoke) and the session background
/// work (flushing activity, purging ended sessions). Validate itself is
/// the ``SessionAuthority``'s.
public final class SessionService: AccountFeature {
    let context: AccountContext

    init(context: AccountContext) {
        self.context = context
    }
}

extension SessionService {
    // MARK: The Active Sessions page

    /// The user's live sessions, newest activity first, the caller's marked.
    public func listSessions(tenant: Tenant, token: String) async throws -> [SessionListing] {
        let (current, user) = try await authenticate(tenant: tenant.id, token: token)
        let now = clock.now()
        let sessions = try await store.read { try $0.sessions(tenant: tenant.id, user: user.id) }
        return
            sessions.compactMap { session -> SessionListing? in
                let lastActive = max(session.lastActiveAt, sessionCache.pendingLastActive(session.id) ?? session.lastActiveAt)
                guard session.isLive(at: now, lastActive: lastActive) else { return nil }
                return SessionListing(session: session, lastActiveAt: lastActive, current: session.id == current.id)
            }
            .sorted { ($0.lastActiveAt, $0.session.createdAt) > ($1.lastActiveAt, $1.session.createdAt) }
    }

    /// Ends one of the caller's own sessions. Another user's session, or one
    /// already ended, is NOT_FOUND (`SESSION_NOT_FOUND`).
    public func revokeSession(tenant: Tenant, token: String, sessionID: String, client: ClientDetails) async throws {
        let (_, user) = try await authenticate(tenant: tenant.id, token: token)
        let notFound = DomainError(.notFound, .sessionNotFound, "no such session")
        guard let id = SessionID(sessionID) else { throw notFound }
        let now = clock.now()
        let client = Self.bounded(client)
        try await store.write { writer in
            guard let session = try writer.session(tenant: tenant.id, id: id), session.userID == user.id,
                try writer.revokeSession(tenant: tenant.id, id: id, at: now, reason: SessionRevocationReason.revoked.rawValue)
            else { throw notFound }
            try writer.append(.sessionRevoked(sessionID: id, userID: user.id, reason: SessionRevocationReason.revoked.rawValue), tenant: tenant.id, at: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .sessionRevoked, ip: client.ip,
                    userAgent: client.userAgent, detail: "session \(id)", createdAt: now))
        }
    }

    /// Ends every session of the caller but the calling one.
    public func revokeOtherSessions(tenant: Tenant, token: String, client: ClientDetails) async throws -> Int {
        let (current, user) = try await authenticate(tenant: tenant.id, token: token)
        return try await revokeAll(
            tenant: tenant, user: user.id, except: current.id, reason: SessionRevocationReason.revokedOthers.rawValue, client: Self.bounded(client))
    }

    /// Ends every session of a user: administrators and tenant owners/admins
    /// (an owner's sessions only by an owner or an administrator).
    public func revokeAllSessions(tenant: Tenant, actor: Principal, userID: String, client: ClientDetails) async throws
        -> Int
    {
        guard actor.belongs(to: tenant.id), actor.managesUsers else { throw DomainError.forbidden }
        guard let id = UserID(userID),
            let user = try await store.read({ try $0.user(tenant: tenant.id, id: id) })
        else { throw DomainError.userNotFound }
        guard user.role <= actor.role else {
            throw DomainError(.permissionDenied, .roleRequired, "only an owner may sign out an owner")
        }
        return try await revokeAll(
            tenant: tenant, user: id, except: nil, reason: SessionRevocationReason.revokedByAdmin.rawValue, client: Self.bounded(client))
    }

    private func revokeAll(tenant: Tenant, user: UserID, except: SessionID?, reason: String, client: ClientDetails)
        async throws -> Int
    {
        let now = clock.now()
        return try await store.write { writer in
            let revoked = try writer.revokeSessionsAnnouncing(
                tenant: tenant.id, user: user, except: except, at: now, reason: reason)
            if !revoked.isEmpty {
                try writer.append(
                    SecurityLogEntry(
                        tenantID: tenant.id, userID: user, kind: .sessionRevoked, ip: client.ip,
                        userAgent: client.userAgent, detail: "\(revoked.count) sessions (\(reason))", createdAt: now))
            }
            return revoked.count
        }
    }

    // MARK: Background work

    /// Writes the last-active times kept in memory. Returns how many.
    @discardableResult
    public func flushLastActive() async throws -> Int {
        let touches = sessionCache.takePendingTouches()
        guard !touches.isEmpty else { return 0 }
        do {
            try await store.write { writer in try writer.touchSessions(touches) }
        } catch {
            sessionCache.restore(touches)
            throw error
        }
        return touches.count
    }

    /// Deletes sessions that ended (revoked, or past their idle timeout or
    /// absolute lifetime) more than `retentionSeconds` ago, and sign-in
    /// challenges and pending 2FA enrolments that expired as long ago.
    /// Returns how many sessions.
    /// Activity kept in memory is flushed first (and nothing is deleted if
    /// that fails), so a session alive only in memory is never purged.
    @discardableResult
    public func purgeEndedSessions(retentionSeconds: Int64) async throws -> Int {
        try await flushLastActive()
        let cutoff = clock.now().adding(seconds: -retentionSeconds)
        var deleted = 0
        var after: String?
        while true {
            let page = try await store.read { [after] in try $0.tenants(afterSlug: after, limit: 200) }
            for tenant in page {
                deleted += try await store.write { writer in
                    _ = try writer.deleteExpiredTwoFactorState(tenant: tenant.id, before: cutoff)
                    return try writer.deleteEndedSessions(tenant: tenant.id, endedBefore: cutoff)
                }
            }
            guard page.count == 200, let last = page.last else { break }
            after = last.slug
        }
        return deleted
    }
}
