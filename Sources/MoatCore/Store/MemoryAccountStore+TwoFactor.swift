extension MemoryTransaction {
    func twoFactor(tenant: TenantID, user: UserID) -> TwoFactorCredential? {
        guard let credential = state.twoFactor[user], credential.tenantID == tenant else { return nil }
        return credential
    }

    func pendingTwoFactor(tenant: TenantID, user: UserID) -> PendingTwoFactor? {
        guard let pending = state.pendingTwoFactor[user], pending.tenantID == tenant else { return nil }
        return pending
    }

    func recoveryCodes(tenant: TenantID, user: UserID) -> [RecoveryCode] {
        (state.recoveryCodes[user] ?? []).filter { $0.tenantID == tenant }.sorted { $0.slot < $1.slot }
    }

    func signInChallenge(tenant: TenantID, tokenHash: [UInt8]) -> SignInChallenge? {
        guard let challenge = state.challenges[tokenHash], challenge.tenantID == tenant else { return nil }
        return challenge
    }

    func setTwoFactor(_ credential: TwoFactorCredential) {
        guard self.user(tenant: credential.tenantID, id: credential.userID) != nil else { return }
        state.twoFactor[credential.userID] = credential
        marks.user(credential.userID)
    }

    func deleteTwoFactor(tenant: TenantID, user: UserID) -> Bool {
        guard self.user(tenant: tenant, id: user) != nil else { return false }
        let existed = state.twoFactor.removeValue(forKey: user) != nil
        state.recoveryCodes.removeValue(forKey: user)
        deletePendingTwoFactor(tenant: tenant, user: user)
        if existed { marks.user(user) }
        return existed
    }

    func advanceTwoFactorStep(tenant: TenantID, user: UserID, step: Int64) -> Bool {
        guard var credential = twoFactor(tenant: tenant, user: user) else { return false }
        if let last = credential.lastUsedStep, last >= step { return false }
        credential.lastUsedStep = step
        credential.failedAttempts = 0
        credential.lockedUntil = nil
        state.twoFactor[user] = credential
        return true
    }

    func setTwoFactorAttempts(tenant: TenantID, user: UserID, failures: Int, lockedUntil: Timestamp?) {
        guard var credential = twoFactor(tenant: tenant, user: user) else { return }
        credential.failedAttempts = failures
        credential.lockedUntil = lockedUntil
        state.twoFactor[user] = credential
    }

    func setPendingTwoFactor(_ pending: PendingTwoFactor) {
        guard self.user(tenant: pending.tenantID, id: pending.userID) != nil else { return }
        state.pendingTwoFactor[pending.userID] = pending
    }

    func deletePendingTwoFactor(tenant: TenantID, user: UserID) {
        if pendingTwoFactor(tenant: tenant, user: user) != nil { state.pendingTwoFactor.removeValue(forKey: user) }
    }

    func replaceRecoveryCodes(tenant: TenantID, user: UserID, with codes: [RecoveryCode]) {
        guard self.user(tenant: tenant, id: user) != nil else { return }
        state.recoveryCodes[user] = codes.filter { $0.tenantID == tenant && $0.userID == user }
    }

    func useRecoveryCode(tenant: TenantID, user: UserID, slot: Int, at: Timestamp) -> Bool {
        guard var codes = state.recoveryCodes[user],
            let index = codes.firstIndex(where: { $0.tenantID == tenant && $0.slot == slot && $0.usedAt == nil })
        else { return false }
        codes[index].usedAt = at
        state.recoveryCodes[user] = codes
        return true
    }

    func insert(_ challenge: SignInChallenge) {
        guard self.user(tenant: challenge.tenantID, id: challenge.userID) != nil else { return }
        state.challenges[challenge.tokenHash] = challenge
    }

    func consumeSignInChallenge(tenant: TenantID, tokenHash: [UInt8], at: Timestamp) -> SignInChallenge? {
        guard var challenge = signInChallenge(tenant: tenant, tokenHash: tokenHash), challenge.usedAt == nil,
            at < challenge.expiresAt
        else { return nil }
        challenge.usedAt = at
        state.challenges[tokenHash] = challenge
        return challenge
    }

    func deleteExpiredTwoFactorState(tenant: TenantID, before: Timestamp) -> Int {
        let challenges = state.challenges.filter { $0.value.tenantID == tenant && $0.value.expiresAt < before }
        for key in challenges.keys { state.challenges.removeValue(forKey: key) }
        let pending = state.pendingTwoFactor.filter { $0.value.tenantID == tenant && $0.value.expiresAt < before }
        for key in pending.keys { state.pendingTwoFactor.removeValue(forKey: key) }
        return challenges.count + pending.count
    }
}
