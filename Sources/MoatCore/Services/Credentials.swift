import MoatCrypto

/// The checks several features share: a password through the sign-in
/// lockout and the per-address throttle, and a TOTP or recovery code through
/// the second-factor lockout. Sign-in, passwords, two-factor and deletion
/// reach each other only through this.
final class Credentials: AccountFeature {
    let context: AccountContext

    init(context: AccountContext) { self.context = context }
}

extension Credentials {
    /// The user behind an email and password, through the lockout: unknown
    /// email and wrong password are the same UNAUTHENTICATED
    /// (`INVALID_CREDENTIALS`) after the same Argon2id work. Callers hold
    /// the sign-in queue of the email.
    ///
    /// Each attempt is counted toward the lockout *before* the hash is
    /// checked, in one write that refuses if the account (or unknown email)
    /// is locked. So guesses checked in parallel, here or on other moatd
    /// instances sharing the database, can never outnumber the threshold:
    /// the attempt that reaches it locks, and the ones after it are refused
    /// unchecked. A right password resets the count: here when
    /// `resetsCountOnSuccess` is set or the account cannot sign in (disabled,
    /// pending deletion, its tenant pending deletion), else in the caller's
    /// own write (`SignInService.passwordAccepted`).
    func checkPassword(
        tenant: Tenant, email: String, secret: [UInt8], client: ClientDetails, resetsCountOnSuccess: Bool = false
    ) async throws -> User {
        let start = clock.now()
        try await checkAddress(tenant: tenant, client: client, at: start)
        let user = try await store.read { try $0.user(tenant: tenant.id, email: email) }

        guard let user else {
            try await countUnknownEmailAttempt(tenant: tenant, email: email, at: start)
            do { _ = try await hasher.verifyDecoy(secret) } catch {
                try await refundUnknownEmailAttempt(tenant: tenant, email: email)
                throw error
            }
            try await countAddressFailure(tenant: tenant, client: client)
            throw DomainError.invalidCredentials
        }

        // While locked nothing is checked and nothing is written (the
        // failure that locked it is in the security log already), so locked
        // attempts cost an attacker nothing and us nothing.
        try await countAttempt(tenant: tenant, user: user.id, at: start)

        guard try await verifyCounted(secret, against: user.passwordHash, tenant: tenant, user: user.id) else {
            try await logFailure(tenant: tenant, user: user.id, client: client, detail: "wrong password")
            try await countAddressFailure(tenant: tenant, client: client)
            throw DomainError.invalidCredentials
        }
        if resetsCountOnSuccess || user.status != .active || tenant.status != .active {
            try await resetCount(tenant: tenant.id, user: user.id)
        }
        return user
    }

    /// Counts one password attempt on the account, unless it is locked at
    /// `now` (then SIGN_IN_LOCKED and nothing is written). Atomic across
    /// instances: the store's write re-reads the count.
    func countAttempt(tenant: Tenant, user: UserID, at now: Timestamp) async throws {
        let policy = tenant.policy
        let wait = try await store.write { writer -> Int64? in
            guard var current = try writer.user(tenant: tenant.id, id: user) else { return nil }
            let lockout = Lockout(failures: current.failedSignIns, lockedUntil: current.lockedUntil)
            if let wait = lockout.retryAfter(at: now) { return wait }
            let next = lockout.failed(at: now, policy: policy)
            current.failedSignIns = next.failures
            current.lockedUntil = next.lockedUntil
            try writer.update(current)
            return nil
        }
        if let wait { throw Lockout.lockedError(retryAfter: wait) }
    }

    /// The unknown-email twin of ``countAttempt(tenant:user:at:)``: the
    /// email's count lives in the store (shared, and kept across restarts),
    /// bounded by `unknownEmailThrottleEntries`.
    private func countUnknownEmailAttempt(tenant: Tenant, email: String, at now: Timestamp) async throws {
        let policy = tenant.policy
        let capacity = configuration.unknownEmailThrottleEntries
        let wait = try await store.write { writer -> Int64? in
            let lockout = try writer.unknownEmailLockout(tenant: tenant.id, email: email) ?? Lockout()
            if let wait = lockout.retryAfter(at: now) { return wait }
            try writer.setUnknownEmailLockout(
                tenant: tenant.id, email: email, lockout.failed(at: now, policy: policy), at: now, capacity: capacity)
            return nil
        }
        if let wait { throw Lockout.lockedError(retryAfter: wait) }
    }

    /// Checks a password whose attempt was counted; if it could not be
    /// checked at all (the hashing pool refused: overloaded), the attempt is
    /// given back, so an overloaded sign-in is no lockout step.
    private func verifyCounted(_ secret: [UInt8], against hash: String, tenant: Tenant, user: UserID) async throws
        -> Bool
    {
        do {
            return try await hasher.verify(secret, against: hash)
        } catch {
            try await refundAttempt(tenant: tenant, user: user)
            throw error
        }
    }

    /// Takes back one counted attempt that was never checked. If what is
    /// left is below the threshold, a lock goes too (only reaching the
    /// threshold locks).
    private func refundAttempt(tenant: Tenant, user: UserID) async throws {
        let threshold = tenant.policy.lockoutThreshold
        try await store.write { writer in
            guard var current = try writer.user(tenant: tenant.id, id: user), current.failedSignIns > 0 else { return }
            current.failedSignIns -= 1
            if current.failedSignIns < threshold { current.lockedUntil = nil }
            try writer.update(current)
        }
    }

    /// ``refundAttempt(tenant:user:)`` for an email with no account.
    private func refundUnknownEmailAttempt(tenant: Tenant, email: String) async throws {
        let threshold = tenant.policy.lockoutThreshold
        let capacity = configuration.unknownEmailThrottleEntries
        let now = clock.now()
        try await store.write { writer in
            guard var lockout = try writer.unknownEmailLockout(tenant: tenant.id, email: email), lockout.failures > 0
            else { return }
            lockout.failures -= 1
            if lockout.failures < threshold { lockout.lockedUntil = nil }
            try writer.setUnknownEmailLockout(tenant: tenant.id, email: email, lockout, at: now, capacity: capacity)
        }
    }

    /// A right password: the lockout count starts again.
    private func resetCount(tenant: TenantID, user: UserID) async throws {
        try await store.write { writer in
            guard var current = try writer.user(tenant: tenant, id: user),
                current.failedSignIns != 0 || current.lockedUntil != nil
            else { return }
            current.failedSignIns = 0
            current.lockedUntil = nil
            try writer.update(current)
        }
    }

    /// Logs a wrong password (already counted by ``countAttempt(tenant:user:at:)``).
    func logFailure(tenant: Tenant, user: UserID, client: ClientDetails, detail: String) async throws {
        let now = clock.now()
        try await store.write { writer in
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user, kind: .signInFailed, ip: client.ip,
                    userAgent: client.userAgent, detail: detail, createdAt: now))
        }
    }

    /// Refuses, before anything is looked up or hashed, an attempt from an
    /// address past the per-address failure limit (RESOURCE_EXHAUSTED
    /// `ADDRESS_THROTTLED` with `retry_after_seconds`).
    func checkAddress(tenant: Tenant, client: ClientDetails, at now: Timestamp) async throws {
        if let wait = try await context.addressThrottle.retryAfter(ip: client.ip, tenant: tenant.id, at: now) {
            throw AddressThrottle.throttledError(retryAfter: wait)
        }
    }

    /// Counts a failed sign-in against the client's address.
    func countAddressFailure(tenant: Tenant, client: ClientDetails) async throws {
        try await context.addressThrottle.recordFailure(ip: client.ip, tenant: tenant.id, at: clock.now())
    }

    /// Checks the user's password again before a sensitive change, through
    /// the sign-in lockout: a stolen session must not become an unlimited
    /// password oracle.
    func reauthenticate(tenant: Tenant, user: User, password: String, client: ClientDetails, action: String)
        async throws
    {
        try await signInQueue.run("\(tenant.id.rawValue)/\(user.email)") {
            try await countAttempt(tenant: tenant, user: user.id, at: clock.now())
            let fresh = try await store.read { try $0.user(tenant: tenant.id, id: user.id) } ?? user
            guard let candidate = try? Self.candidatePassword(password),
                try await verifyCounted(candidate, against: fresh.passwordHash, tenant: tenant, user: user.id)
            else {
                try await logFailure(tenant: tenant, user: user.id, client: client, detail: "wrong password on \(action)")
                throw DomainError(.unauthenticated, .invalidCredentials, "the password is wrong")
            }
            try await resetCount(tenant: tenant.id, user: user.id)
        }
    }

    /// Checks a TOTP code or a recovery code of the user, one check at a
    /// time per user, and runs `body` in the write transaction that spends
    /// it. The spending is conditional (a later step than the last used, an
    /// unused recovery code): if it fails, or `body` throws, nothing is
    /// written. Wrong codes count toward the lockout; a locked second
    /// factor checks nothing.
    func withSecondFactor<T: Sendable>(
        tenant: Tenant, user: User, code: String, recoveryCode: String, client: ClientDetails,
        _ body: @escaping @Sendable (any AccountStoreWriter, SecondFactorProof) throws -> T
    ) async throws -> T {
        try await signInQueue.run("\(tenant.id.rawValue)/2fa/\(user.id.rawValue)") {
            let (proof, checked) = try await proveSecondFactor(
                tenant: tenant, user: user, code: code, recoveryCode: recoveryCode, client: client)
            do {
                return try await store.write { writer in
                    // What the code was checked against must still be what
                    // is stored: a re-enrolment confirmed (or codes
                    // regenerated, by another process) since the check
                    // replaced the secret or the code in that slot.
                    let current = try writer.twoFactor(tenant: tenant.id, user: user.id)
                    switch proof {
                    case .totp(let step):
                        guard let stored = current?.sealedSecret,
                            self.secrets.sealSameTOTPSecret(stored, checked.secret, tenant: tenant.id, user: user.id)
                        else { throw DomainError.totpCodeInvalid }
                        guard try writer.advanceTwoFactorStep(tenant: tenant.id, user: user.id, step: step) else {
                            throw DomainError.totpCodeReused
                        }
                    case .recoveryCode(let slot, let remaining):
                        let now = self.clock.now()
                        guard let stored = current?.sealedSecret,
                            self.secrets.sealSameTOTPSecret(stored, checked.secret, tenant: tenant.id, user: user.id),
                            try writer.recoveryCodes(tenant: tenant.id, user: user.id)
                                .first(where: { $0.slot == slot })?.codeHash == checked.codeHash,
                            try writer.useRecoveryCode(tenant: tenant.id, user: user.id, slot: slot, at: now)
                        else {
                            throw DomainError.recoveryCodeInvalid
                        }
                        try writer.setTwoFactorAttempts(tenant: tenant.id, user: user.id, failures: 0, lockedUntil: nil)
                        try writer.append(
                            .twoFactorRecoveryCodeUsed(userID: user.id, email: user.email, remaining: remaining),
                            tenant: tenant.id, at: now)
                        try writer.append(
                            SecurityLogEntry(
                                tenantID: tenant.id, userID: user.id, kind: .twoFactorRecoveryCodeUsed, ip: client.ip,
                                userAgent: client.userAgent, detail: "\(remaining) left", createdAt: now))
                    }
                    return try body(writer, proof)
                }
            } catch let error as DomainError where error == .totpCodeReused {
                try await logTwoFactorFailure(tenant: tenant, user: user, client: client, detail: "reused code")
                throw error
            }
        }
    }

    /// Which code proves the second factor, before anything is spent, and
    /// what it was checked against (the sealed secret, the recovery code's
    /// hash), for the write to confirm it is unchanged.
    private func proveSecondFactor(
        tenant: Tenant, user: User, code: String, recoveryCode: String, client: ClientDetails
    ) async throws -> (SecondFactorProof, (secret: SealedSecret, codeHash: String?)) {
        guard code.isEmpty != recoveryCode.isEmpty else {
            throw DomainError.invalid(.codeRequired, "give exactly one of a code or a recovery code")
        }
        let now = clock.now()
        let (credential, codes) = try await store.read { reader in
            (try reader.twoFactor(tenant: tenant.id, user: user.id), try reader.recoveryCodes(tenant: tenant.id, user: user.id))
        }
        guard let credential else { throw DomainError.twoFactorNotEnabled }
        if let lockedUntil = credential.lockedUntil, now < lockedUntil {
            throw DomainError.twoFactorLocked(retryAfter: max(1, (lockedUntil.milliseconds - now.milliseconds + 999) / 1000))
        }
        if !code.isEmpty {
            let secret = try secrets.openTOTPSecret(credential.sealedSecret, tenant: tenant.id, user: user.id)
            let totp: TOTP
            do {
                totp = try TOTP(
                    secret: secret, digits: credential.digits, period: credential.period,
                    algorithm: HashAlgorithm(rawValue: credential.algorithm) ?? .sha1)
            } catch { throw DomainError.secretUnreadable }
            if let step = totp.verify(Self.cleanedCode(code), at: now.seconds, skew: configuration.twoFactor.skewSteps) {
                let step = Int64(clamping: step)
                if let last = credential.lastUsedStep, step <= last {
                    try await logTwoFactorFailure(tenant: tenant, user: user, client: client, detail: "reused code")
                    throw DomainError.totpCodeReused
                }
                return (.totp(step: step), (credential.sealedSecret, nil))
            }
            try await recordTwoFactorFailure(tenant: tenant, user: user, client: client, detail: "wrong code")
            throw DomainError.totpCodeInvalid
        }
        let unused = codes.filter { $0.usedAt == nil }
        if let normalized = Self.normalizedRecoveryCode(recoveryCode) {
            for candidate in unused {
                if try await hasher.verify(Array(normalized.utf8), against: candidate.codeHash) {
                    return (
                        .recoveryCode(slot: candidate.slot, remaining: unused.count - 1),
                        (credential.sealedSecret, candidate.codeHash)
                    )
                }
            }
        }
        try await recordTwoFactorFailure(tenant: tenant, user: user, client: client, detail: "wrong recovery code")
        throw DomainError.recoveryCodeInvalid
    }

    /// Counts a wrong code; the failure that reaches the threshold locks
    /// the second factor and answers TWO_FACTOR_LOCKED itself.
    private func recordTwoFactorFailure(tenant: Tenant, user: User, client: ClientDetails, detail: String) async throws {
        let settings = configuration.twoFactor
        let now = clock.now()
        let locked = try await store.write { writer -> Bool in
            guard let credential = try writer.twoFactor(tenant: tenant.id, user: user.id) else { return false }
            // A lock that has run out starts a fresh count.
            let previous = credential.lockedUntil.map { $0 <= now } == true ? 0 : credential.failedAttempts
            let failures = previous + 1
            let lockedUntil = failures >= settings.lockoutThreshold ? now.adding(seconds: settings.lockoutSeconds) : nil
            try writer.setTwoFactorAttempts(tenant: tenant.id, user: user.id, failures: failures, lockedUntil: lockedUntil)
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: lockedUntil == nil ? .twoFactorFailed : .twoFactorLocked,
                    ip: client.ip, userAgent: client.userAgent, detail: detail, createdAt: now))
            return lockedUntil != nil
        }
        if locked { throw DomainError.twoFactorLocked(retryAfter: settings.lockoutSeconds) }
    }

    /// Logs a refused code that does not count toward the lockout (a
    /// replayed one: the user's own double submit, or a relayed code).
    private func logTwoFactorFailure(tenant: Tenant, user: User, client: ClientDetails, detail: String) async throws {
        let now = clock.now()
        try await store.write { writer in
            try writer.append(
                SecurityLogEntry(
                    tenantID: tenant.id, userID: user.id, kind: .twoFactorFailed, ip: client.ip,
                    userAgent: client.userAgent, detail: detail, createdAt: now))
        }
    }

    /// A code as typed: spaces and hyphens dropped ("123 456").
    static func cleanedCode(_ code: String) -> String {
        guard code.utf8.count <= 32 else { return "" }
        return String(code.filter { $0 != " " && $0 != "-" })
    }

    /// The recovery-code alphabet: lowercase letters and digits without
    /// the look-alikes 0, 1, l and o. 32 symbols, 5 bits each.
    static let recoveryAlphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")

    /// Ten fresh recovery codes (`xxxxx-xxxxx`, 50 bits each) and their
    /// Argon2id hashes for the store.
    func makeRecoveryCodes(tenant: TenantID, user: UserID) async throws -> ([String], [RecoveryCode]) {
        var codes: [String] = []
        for _ in 0..<TwoFactorSettings.recoveryCodeCount {
            let symbols = SecureBytes.random(10).map { Self.recoveryAlphabet[Int($0 & 31)] }
            codes.append(String(symbols[0..<5]) + "-" + String(symbols[5...]))
        }
        var hashed: [RecoveryCode] = []
        for (slot, code) in codes.enumerated() {
            let normalized = Self.normalizedRecoveryCode(code)!
            hashed.append(
                RecoveryCode(
                    tenantID: tenant, userID: user, slot: slot, codeHash: try await hasher.hash(Array(normalized.utf8))))
        }
        return (codes, hashed)
    }

    /// A recovery code as typed, normalized (lowercase, no spaces or
    /// hyphens), or nil if it cannot be one.
    static func normalizedRecoveryCode(_ input: String) -> String? {
        guard input.utf8.count <= 64 else { return nil }
        let cleaned = input.lowercased().filter { $0 != " " && $0 != "-" }
        guard cleaned.count == 10, cleaned.allSatisfy({ recoveryAlphabet.contains($0) }) else { return nil }
        return cleaned
    }
}
