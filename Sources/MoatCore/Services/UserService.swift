import Foundation


/// A tenant's users as its managers see them: creating, listing,
/// enabling and disabling, and the security log.
public final class UserService: AccountFeature {
    let context: AccountContext

    init(context: AccountContext) {
        self.context = context
    }
}

extension UserService {
    // MARK: Managing users

    /// Creates a user. Administrators and tenant owners/admins may; only
    /// owners (and administrators) may create owners.
    public func createUser(tenant: Tenant, actor: Principal, email: String, password: String, role: TenantRole) async throws
        -> User
    {
        guard actor.belongs(to: tenant.id), actor.managesUsers else { throw DomainError.forbidden }
        if tenant.status == .pendingDeletion { throw DomainError.tenantPendingDeletion(purgeAfter: tenant.purgeAfter) }
        guard role <= actor.role else {
            throw DomainError(.permissionDenied, .roleRequired, "only an owner may create an owner")
        }
        let email = try EmailAddress.normalize(email)
        try PasswordRules.check(password, minimumLength: tenant.policy.minPasswordLength, email: email)
        let hash = try await hasher.hash(PasswordRules.normalized(password))
        let now = clock.now()
        let user = User(id: .random(), tenantID: tenant.id, email: email, passwordHash: hash, role: role, createdAt: now)
        try await store.write { writer in
            try Self.requireActiveTenant(writer, tenant.id)
            try writer.insert(user)
            try writer.append(.userCreated(userID: user.id, email: email, role: role), tenant: tenant.id, at: now)
        }
        return user
    }

    /// A user, for administrators, owners/admins, or the user themself.
    public func user(tenant: Tenant, actor: Principal, id: String) async throws -> User {
        guard let id = UserID(id) else { throw DomainError.userNotFound }
        guard actor.belongs(to: tenant.id), actor.managesUsers || actor.userID == id else { throw DomainError.forbidden }
        guard let user = try await store.read({ try $0.user(tenant: tenant.id, id: id) }) else {
            throw DomainError.userNotFound
        }
        return user
    }

    /// A page of the tenant's users ordered by email.
    public func listUsers(tenant: Tenant, actor: Principal, pageSize: Int, pageToken: String) async throws
        -> (users: [User], nextPageToken: String)
    {
        guard actor.belongs(to: tenant.id), actor.managesUsers else { throw DomainError.forbidden }
        let size = try Self.pageSize(pageSize)
        let after = try Self.decodePageToken(pageToken)
        let page = try await store.read { try $0.users(tenant: tenant.id, afterEmail: after, limit: size + 1) }
        let users = Array(page.prefix(size))
        return (users, page.count > size ? Self.encodePageToken(users.last?.email) : "")
    }

    /// Disables (revoking every session) or re-enables a user.
    public func setUserEnabled(tenant: Tenant, actor: Principal, id: String, enabled: Bool) async throws -> User {
        guard actor.belongs(to: tenant.id), actor.managesUsers else { throw DomainError.forbidden }
        guard let id = UserID(id) else { throw DomainError.userNotFound }
        guard actor.userID != id else {
            throw DomainError(.failedPrecondition, .cannotDisableSelf, "you cannot disable or enable yourself")
        }
        let now = clock.now()
        let actorRole = actor.role
        return try await store.write { writer in
            guard var user = try writer.user(tenant: tenant.id, id: id) else { throw DomainError.userNotFound }
            guard user.role <= actorRole else {
                throw DomainError(.permissionDenied, .roleRequired, "only an owner may disable or enable an owner")
            }
            switch (enabled, user.status) {
            case (false, .active):
                user.status = .disabled
                try writer.update(user)
                _ = try writer.revokeSessionsAnnouncing(tenant: tenant.id, user: id, at: now, reason: SessionRevocationReason.userDisabled.rawValue)
                try writer.append(.userDisabled(userID: id, email: user.email), tenant: tenant.id, at: now)
                try writer.append(
                    SecurityLogEntry(
                        tenantID: tenant.id, userID: id, kind: .userDisabled, ip: "", userAgent: "", detail: "",
                        createdAt: now))
            case (true, .disabled):
                user.status = .active
                user.failedSignIns = 0
                user.lockedUntil = nil
                try writer.update(user)
                try writer.append(.userEnabled(userID: id, email: user.email), tenant: tenant.id, at: now)
                try writer.append(
                    SecurityLogEntry(
                        tenantID: tenant.id, userID: id, kind: .userEnabled, ip: "", userAgent: "", detail: "",
                        createdAt: now))
            case (_, .pendingDeletion):
                throw DomainError(
                    .failedPrecondition, .accountPendingDeletion, "the account is scheduled for deletion")
            default:
                break  // already in the asked state
            }
            return user
        }
    }
}
