extension DomainError {
    static let confirmationRequired = DomainError(
        .invalidArgument, .confirmationRequired, "type DELETE (exactly) to confirm the deletion")
    static let lastTenantOwner = DomainError(
        .failedPrecondition, .lastOwner,
        "the last owner of a tenant cannot delete their account; transfer ownership or delete the tenant")
    static func accountPendingDeletion(purgeAfter: Timestamp) -> DomainError {
        DomainError(
            .failedPrecondition, .accountPendingDeletion,
            "the account is scheduled for deletion; restore it before it is purged",
            details: ["purge_after_unix": "\(purgeAfter.seconds)"])
    }
    static func tenantPendingDeletion(purgeAfter: Timestamp?) -> DomainError {
        DomainError(
            .failedPrecondition, .tenantPendingDeletion, "the tenant is scheduled for deletion",
            details: purgeAfter.map { ["purge_after_unix": "\($0.seconds)"] } ?? [:])
    }
    static let notPendingDeletion = DomainError(
        .failedPrecondition, .notPendingDeletion, "nothing is scheduled for deletion")
}

/// What one run of the purge job deleted.
public struct PurgeReport: Sendable, Equatable {
    public var accounts = 0
    public var tenants = 0
    /// Accounts and tenants whose purge failed this run (retried next run;
    /// one bad row never blocks the others).
    public var failed = 0
}

/// Deleting and restoring accounts and tenants, and purging them after
/// the grace period.
public final class DeletionService: AccountFeature {
    let context: AccountContext
    /// Password and second-factor checks shared with other features.
    let credentials: Credentials

    init(context: AccountContext, credentials: Credentials) {
        self.context = context
        self.credentials = credentials
    }
}

extension DeletionService {

    /// The text a user types to confirm a deletion.
    public static let deletionConfirmation = "DELETE"

    // MARK: Accounts

    /// Schedules the session user's account for deletion: the confirmation
    /// must be exactly `DELETE`, with the password, and a current code
    /// when 2FA is on. Every session is revoked at once; the account is
    /// purged after the grace period unless restored.
    public func requestAccountDeletion(
        tenant: Tenant, token: String, confirmation: String, password: String, code: String, client: ClientDetails
    ) async throws -> User {
        let (_, user) = try await authenticate(tenant: tenant.id, token: token)
        let client = Self.bounded(client)
        guard confirmation == Self.deletionConfirmation else { throw DomainError.confirmationRequired }
        try await credentials.reauthenticate(tenant: tenant, user: user, password: password, client: client, action: "account deletion")
        let now = clock.now()
        let purgeAfter = now.adding(seconds: configuration.deletionGraceSeconds)
        let schedule: @Sendable (any AccountStoreWriter) throws -> User = { writer in
            guard var current = try writer.user(tenant: tenant.id, id: user.id), current.status == .active else {
                throw DomainError.sessionInvalid
            }
            if current.role == .owner, try writer.activeOwnerCount(tenant: tenant.id, except: user.id) == 0 {
                throw DomainError.lastTenantOwner
            }
            // Likewise the only owner of a team that has other members.
            for membership in try Self.allMemberships(writer, tenant: tenant.id, user: user.id)
            where membership.role == .owner {
                let members = try writer.teamMembers(tenant: tenant.id, team: membership.team.id)
                if members.count > 1, !members.contains(where: { $0.role == .owner && $0.userID != user.id }) {
                    throw DomainError(
                        .failedPrecondition, .lastTeamOwner,
                        "you are the only owner of team \(membership.team.id); transfer its ownership first",
                        details: ["team_id": membership.team.id.rawValue])
                }
            }
            current.status = .pendingDeletion
            current.purgeAfter = purgeAfter
            try writer.update(current)
            _ = try writer.revokeSessionsAnnouncing(tenant: tenant.id, user: user.id, at: now, reason: SessionRevocationReason.accountDeletion.rawValue)
            try writer.discardPasswordResets(tenant: tenant.id, user: user.id, at: now)
            try writer.append(
                .accountDeletionScheduled(userID: user.id, email: user.email, purgeAfter: purgeAfter),
                tenant: tenant.id, at: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .accountDeletionRequested, ip: client.ip,
                    userAgent: client.userAgent, detail: "purge after \(purgeAfter.seconds)", createdAt: now))
            return current
        }
        return try await writeWithCodeIfEnabled(tenant: tenant, user: user, code: code, client: client, schedule)
    }

    /// Restores an account pending deletion, during the grace period: the
    /// email and password (and a current code when 2FA is on), as at
    /// sign-in, with the same lockout and the same answer for an unknown
    /// email or a wrong password. The user signs in afterwards.
    public func restoreAccount(tenant: Tenant, email: String, password: String, code: String, client: ClientDetails)
        async throws -> User
    {
        let email = try EmailAddress.normalize(email)
        let secret = try Self.candidatePassword(password)
        let client = Self.bounded(client)
        if tenant.status == .pendingDeletion { throw DomainError.tenantPendingDeletion(purgeAfter: tenant.purgeAfter) }
        let user = try await signInQueue.run("\(tenant.id.rawValue)/\(email)") { () -> User in
            try await credentials.checkPassword(
                tenant: tenant, email: email, secret: secret, client: client, resetsCountOnSuccess: true)
        }
        guard user.status == .pendingDeletion, let purgeAfter = user.purgeAfter else { throw DomainError.notPendingDeletion }
        guard clock.now() < purgeAfter else {
            throw DomainError(.failedPrecondition, .gracePeriodOver, "the grace period is over; the account is being purged")
        }
        let restore: @Sendable (any AccountStoreWriter) throws -> User = { writer in
            let now = self.clock.now()
            guard var current = try writer.user(tenant: tenant.id, id: user.id), current.status == .pendingDeletion,
                let due = current.purgeAfter, now < due
            else { throw DomainError.notPendingDeletion }
            current.status = .active
            current.purgeAfter = nil
            try writer.update(current)
            try writer.append(.accountRestored(userID: user.id, email: user.email), tenant: tenant.id, at: now)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .accountRestored, ip: client.ip,
                    userAgent: client.userAgent, detail: "", createdAt: now))
            return current
        }
        return try await writeWithCodeIfEnabled(tenant: tenant, user: user, code: code, client: client, restore)
    }

    /// Runs `body` in a write transaction; when the user has 2FA on, only
    /// with a current code, spent in that same transaction.
    private func writeWithCodeIfEnabled<T: Sendable>(
        tenant: Tenant, user: User, code: String, client: ClientDetails,
        _ body: @escaping @Sendable (any AccountStoreWriter) throws -> T
    ) async throws -> T {
        guard user.twoFactorEnabled else { return try await store.write(body) }
        guard !code.isEmpty else {
            throw DomainError.invalid(.codeRequired, "two-factor is on: a current code is required")
        }
        return try await credentials.withSecondFactor(tenant: tenant, user: user, code: code, recoveryCode: "", client: client) {
            writer, _ in try body(writer)
        }
    }

    /// Every team membership of the user.
    static func allMemberships(_ reader: any AccountStoreReader, tenant: TenantID, user: UserID) throws
        -> [TeamMembership]
    {
        var all: [TeamMembership] = []
        var after: TeamPageKey?
        while true {
            let page = try reader.teamMemberships(tenant: tenant, user: user, after: after, limit: 200)
            all += page
            guard page.count == 200, let last = page.last else { return all }
            after = TeamPageKey(name: last.team.name, id: last.team.id)
        }
    }

    // MARK: Tenants

    /// Schedules a whole tenant for deletion (administrator callers): the
    /// confirmation must be exactly `DELETE`. Every session in it is
    /// revoked; nobody signs in until it is cancelled or purged.
    public func requestTenantDeletion(tenant reference: String, confirmation: String) async throws -> Tenant {
        guard confirmation == Self.deletionConfirmation else { throw DomainError.confirmationRequired }
        let tenant = try await self.tenant(reference: reference)
        let now = clock.now()
        let purgeAfter = now.adding(seconds: configuration.deletionGraceSeconds)
        return try await store.write { writer in
            guard var current = try writer.tenant(id: tenant.id) else { throw DomainError.tenantNotFound }
            guard current.status == .active else { throw DomainError.tenantPendingDeletion(purgeAfter: current.purgeAfter) }
            current.status = .pendingDeletion
            current.purgeAfter = purgeAfter
            try writer.update(current)
            for (session, user) in try writer.revokeTenantSessions(tenant: tenant.id, at: now, reason: SessionRevocationReason.tenantDeletion.rawValue) {
                try writer.append(
                    .sessionRevoked(sessionID: session, userID: user, reason: SessionRevocationReason.tenantDeletion.rawValue), tenant: tenant.id, at: now)
            }
            try writer.append(
                .tenantDeletionScheduled(tenantID: tenant.id, slug: current.slug, name: current.name, purgeAfter: purgeAfter),
                tenant: tenant.id, at: now)
            return current
        }
    }

    /// Cancels a tenant's pending deletion (administrator callers).
    public func cancelTenantDeletion(tenant reference: String) async throws -> Tenant {
        let tenant = try await self.tenant(reference: reference)
        let now = clock.now()
        return try await store.write { writer in
            guard var current = try writer.tenant(id: tenant.id) else { throw DomainError.tenantNotFound }
            guard current.status == .pendingDeletion else { throw DomainError.notPendingDeletion }
            current.status = .active
            current.purgeAfter = nil
            try writer.update(current)
            try writer.append(
                .tenantDeletionCancelled(tenantID: tenant.id, slug: current.slug, name: current.name),
                tenant: tenant.id, at: now)
            return current
        }
    }

    // MARK: Purging

    /// Deletes every tenant and account whose grace period has ended, one
    /// transaction each, with its `tenant.purged` / `account.purged` event.
    @discardableResult
    public func purgeDueDeletions() async throws -> PurgeReport {
        var report = PurgeReport()
        let now = clock.now()
        // Rows whose purge failed this run, so the loops move past them.
        var skipped = Set<TenantID>()
        var skippedUsers = Set<UserID>()
        while true {
            let due = try await store.read { try $0.tenantsDueForPurge(at: now, limit: 50) }
                .filter { !skipped.contains($0.id) }
            for tenant in due {
                do {
                    if try await purgeTenant(tenant.id, at: now) { report.tenants += 1 }
                } catch {
                    report.failed += 1
                    skipped.insert(tenant.id)
                }
            }
            if due.count < 50 { break }
        }
        var after: String?
        while true {
            let page = try await store.read { [after] in try $0.tenants(afterSlug: after, limit: 200) }
            for tenant in page {
                while true {
                    let page = try await store.read { try $0.usersDueForPurge(tenant: tenant.id, at: now, limit: 100) }
                    let due = page.filter { !skippedUsers.contains($0.id) }
                    for user in due {
                        do {
                            if try await purgeAccount(tenant: tenant.id, user: user.id, at: now) { report.accounts += 1 }
                        } catch {
                            report.failed += 1
                            skippedUsers.insert(user.id)
                        }
                    }
                    if page.count < 100 || due.isEmpty { break }
                }
            }
            guard page.count == 200, let last = page.last else { break }
            after = last.slug
        }
        return report
    }

    /// Deletes one tenant whose grace ended, and everything in it: an
    /// `account.purged` for each of its accounts (downstream services that
    /// key data by user delete it), then `tenant.purged`.
    private func purgeTenant(_ id: TenantID, at now: Timestamp) async throws -> Bool {
        try await store.write { writer in
            guard let current = try writer.tenant(id: id), current.status == .pendingDeletion,
                let purgeAfter = current.purgeAfter, purgeAfter <= now
            else { return false }
            var users = 0
            var after: String?
            while true {
                let page = try writer.users(tenant: id, afterEmail: after, limit: 500)
                for user in page {
                    try writer.append(.accountPurged(userID: user.id, tenantID: id, email: user.email), tenant: id, at: now)
                }
                users += page.count
                guard page.count == 500, let last = page.last else { break }
                after = last.email
            }
            guard try writer.deleteTenant(id: id) else { return false }
            try writer.append(
                .tenantPurged(tenantID: id, slug: current.slug, name: current.name, users: users), tenant: id, at: now)
            return true
        }
    }

    /// Deletes one account whose grace ended, with `account.purged`.
    private func purgeAccount(tenant: TenantID, user: UserID, at now: Timestamp) async throws -> Bool {
        try await store.write { writer in
            guard let current = try writer.user(tenant: tenant, id: user), current.status == .pendingDeletion,
                let purgeAfter = current.purgeAfter, purgeAfter <= now
            else { return false }
            // Memberships go with the user (foreign keys); announce each, as
            // every membership change is announced.
            for membership in try Self.allMemberships(writer, tenant: tenant, user: user) {
                try writer.append(
                    .teamMemberRemoved(teamID: membership.team.id, userID: user, role: membership.role, actorID: nil),
                    tenant: tenant, at: now)
            }
            guard try writer.deleteUser(tenant: tenant, id: user) else { return false }
            try writer.append(.accountPurged(userID: user, tenantID: tenant, email: current.email), tenant: tenant, at: now)
            return true
        }
    }
}
