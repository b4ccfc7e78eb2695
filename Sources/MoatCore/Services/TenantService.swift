import Foundation

/// Tenants: creating, listing, and their policy.
public final class TenantService: AccountFeature {
    let context: AccountContext

    init(context: AccountContext) {
        self.context = context
    }
}

extension TenantService {
    /// Checks a slug: 3 to 63 of `a-z`, `0-9`, `-`, not starting or ending
    /// with `-`.
    static func validateSlug(_ slug: String) throws(DomainError) -> String {
        let slug = slug.trimmingCharacters(in: .whitespaces).lowercased()
        let bytes = Array(slug.utf8)
        guard (3...63).contains(bytes.count),
            bytes.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }),
            bytes.first != 0x2D, bytes.last != 0x2D
        else {
            throw .invalid(.slugInvalid, "slug must be 3-63 characters of a-z, 0-9 and '-', not starting or ending with '-'")
        }
        guard !slug.hasPrefix("tn_") else { throw .invalid(.slugInvalid, "slug must not look like a tenant id") }
        return slug
    }

    static func validateName(_ name: String) throws(DomainError) -> String {
        let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 200,
            !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw .invalid(.nameInvalid, "name must be 1-200 printable characters") }
        return name
    }

    /// Creates a tenant and its first owner in one transaction.
    public func createTenant(slug: String, name: String, ownerEmail: String, ownerPassword: String) async throws
        -> (Tenant, User)
    {
        let slug = try Self.validateSlug(slug)
        let name = try Self.validateName(name)
        let email = try EmailAddress.normalize(ownerEmail)
        let policy = TenantPolicy()
        try PasswordRules.check(ownerPassword, minimumLength: policy.minPasswordLength, email: email)
        let hash = try await hasher.hash(PasswordRules.normalized(ownerPassword))
        let now = clock.now()
        let tenant = Tenant(id: .random(), slug: slug, name: name, policy: policy, createdAt: now)
        let owner = User(id: .random(), tenantID: tenant.id, email: email, passwordHash: hash, role: .owner, createdAt: now)
        try await store.write { writer in
            try writer.insert(tenant)
            try writer.insert(owner)
            try writer.append(
                .tenantCreated(tenantID: tenant.id, slug: slug, name: name, ownerID: owner.id, ownerEmail: email),
                tenant: tenant.id, at: now)
            try writer.append(.userCreated(userID: owner.id, email: email, role: .owner), tenant: tenant.id, at: now)
        }
        return (tenant, owner)
    }

    /// A page of tenants ordered by slug.
    public func listTenants(pageSize: Int, pageToken: String) async throws -> (tenants: [Tenant], nextPageToken: String) {
        let size = try Self.pageSize(pageSize)
        let after = try Self.decodePageToken(pageToken)
        let page = try await store.read { try $0.tenants(afterSlug: after, limit: size + 1) }
        let tenants = Array(page.prefix(size))
        return (tenants, page.count > size ? Self.encodePageToken(tenants.last?.slug) : "")
    }

    /// Applies a change to a tenant's policy, validated, and returns it.
    /// The change is applied inside the write transaction to the stored
    /// policy, so concurrent updates of different fields both survive.
    public func updatePolicy(tenant reference: String, change: @escaping @Sendable (inout TenantPolicy) -> Void)
        async throws -> TenantPolicy
    {
        let tenant = try await self.tenant(reference: reference)
        let now = clock.now()
        return try await store.write { writer in
            guard var current = try writer.tenant(id: tenant.id) else { throw DomainError.tenantNotFound }
            var policy = current.policy
            change(&policy)
            try policy.validate()
            current.policy = policy
            try writer.update(current)
            try writer.append(.tenantPolicyUpdated(tenantID: tenant.id), tenant: tenant.id, at: now)
            return policy
        }
    }
}
