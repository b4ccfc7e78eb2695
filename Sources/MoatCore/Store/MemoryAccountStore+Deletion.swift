extension MemoryTransaction {
    func activeOwnerCount(tenant: TenantID, except: UserID?) -> Int {
        state.users.values.filter { $0.tenantID == tenant && $0.role == .owner && $0.status == .active && $0.id != except }
            .count
    }

    func usersDueForPurge(tenant: TenantID, at: Timestamp, limit: Int) -> [User] {
        Array(
            state.users.values.filter { user in
                user.tenantID == tenant && user.status == .pendingDeletion && (user.purgeAfter.map { $0 <= at } ?? false)
            }
            .sorted { ($0.purgeAfter!, $0.id.rawValue) < ($1.purgeAfter!, $1.id.rawValue) }.prefix(max(0, limit)))
    }

    func tenantsDueForPurge(at: Timestamp, limit: Int) -> [Tenant] {
        Array(
            state.tenants.values.filter { tenant in
                tenant.status == .pendingDeletion && (tenant.purgeAfter.map { $0 <= at } ?? false)
            }
            .sorted { ($0.purgeAfter!, $0.id.rawValue) < ($1.purgeAfter!, $1.id.rawValue) }.prefix(max(0, limit)))
    }

    func userCount(tenant: TenantID) -> Int {
        state.users.values.filter { $0.tenantID == tenant }.count
    }

    func deleteUser(tenant: TenantID, id: UserID) -> Bool {
        guard user(tenant: tenant, id: id) != nil else { return false }
        removeUserRows { $0 == id }
        marks.user(id)
        return true
    }

    func deleteTenant(id: TenantID) -> Bool {
        guard state.tenants.removeValue(forKey: id) != nil else { return false }
        let members = Set(state.users.values.filter { $0.tenantID == id }.map(\.id))
        removeUserRows { members.contains($0) }
        let teams = Set(state.teams.values.filter { $0.tenantID == id }.map(\.id))
        state.teams = state.teams.filter { !teams.contains($0.key) }
        state.teamMembers = state.teamMembers.filter { !teams.contains($0.key.team) }
        state.teamInvitations = state.teamInvitations.filter { !teams.contains($0.value.teamID) }
        state.unknownEmails = state.unknownEmails.filter { $0.key.tenant != id }
        // Every session and user of the tenant went: drop everything.
        marks.tenant(id)
        marks.everything()
        return true
    }

    /// Removes users and what references them (sessions, reset tokens,
    /// security log, 2FA, challenges, team memberships, invitations they
    /// sent or accepted), as the SQL schema's cascades do.
    private func removeUserRows(_ matches: (UserID) -> Bool) {
        state.users = state.users.filter { !matches($0.key) }
        state.sessions = state.sessions.filter { !matches($0.value.userID) }
        state.resets = state.resets.filter { !matches($0.value.userID) }
        state.securityLog.removeAll { matches($0.userID) }
        state.twoFactor = state.twoFactor.filter { !matches($0.key) }
        state.pendingTwoFactor = state.pendingTwoFactor.filter { !matches($0.key) }
        state.recoveryCodes = state.recoveryCodes.filter { !matches($0.key) }
        state.challenges = state.challenges.filter { !matches($0.value.userID) }
        state.teamMembers = state.teamMembers.filter { !matches($0.key.user) }
        state.teamInvitations = state.teamInvitations.filter { entry in
            !(entry.value.invitedBy.map(matches) ?? false) && !(entry.value.acceptedBy.map(matches) ?? false)
        }
    }

    func revokeTenantSessions(tenant: TenantID, at: Timestamp, reason: String) -> [(SessionID, UserID)] {
        var revoked: [(SessionID, UserID)] = []
        for (id, session) in state.sessions where session.tenantID == tenant && session.revokedAt == nil {
            state.sessions[id]?.revokedAt = at
            state.sessions[id]?.revokeReason = reason
            revoked.append((id, session.userID))
            marks.user(session.userID)
        }
        return revoked.sorted { $0.0.rawValue < $1.0.rawValue }
    }
}
