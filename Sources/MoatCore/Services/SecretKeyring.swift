import MoatCrypto

/// Seals secrets that must be read back (TOTP secrets) with AES-256-GCM
/// under the master key, bound to their owner: the associated data is the
/// purpose, the tenant id and the user id, so a ciphertext copied to another
/// user's or tenant's row fails to open.
///
/// Each sealed secret records the id of the key that sealed it. New secrets
/// are sealed under the current key; older keys may be kept to open what
/// they sealed, so a key can be rotated without re-enrolling anyone.
public struct SecretKeyring: Sendable {
    /// The id new secrets are sealed under.
    public let currentKeyID: String
    private let keys: [String: [UInt8]]

    /// - Parameters:
    ///   - current: the key new secrets are sealed under, with its id.
    ///   - retired: keys that only open secrets they sealed earlier.
    /// - Precondition: every key is 32 bytes.
    public init(current: (id: String, key: [UInt8]), retired: [(id: String, key: [UInt8])] = []) {
        precondition(current.key.count == AESGCM.keyByteCount, "a keyring key must be 32 bytes")
        var keys: [String: [UInt8]] = [:]
        for (id, key) in retired {
            precondition(key.count == AESGCM.keyByteCount, "a keyring key must be 32 bytes")
            keys[id] = key
        }
        keys[current.id] = current.key
        self.keys = keys
        self.currentKeyID = current.id
    }

    /// A keyring with a fresh random key (tests, embedding).
    public static func ephemeral() -> SecretKeyring {
        let key = SecureBytes.random(AESGCM.keyByteCount)
        return SecretKeyring(current: (id: "ephemeral-" + Base32.encode(Array(key.prefix(4))), key: key))
    }

    /// The associated data binding a TOTP secret to its owner.
    static func totpContext(tenant: TenantID, user: UserID) -> [UInt8] {
        Array("moat/totp-secret/v1\u{0}\(tenant.rawValue)\u{0}\(user.rawValue)".utf8)
    }

    /// Seals a TOTP secret for one user.
    public func sealTOTPSecret(_ secret: [UInt8], tenant: TenantID, user: UserID) throws -> SealedSecret {
        do {
            let box = try AESGCM.seal(
                secret, key: keys[currentKeyID]!, associatedData: Self.totpContext(tenant: tenant, user: user))
            return SealedSecret(keyID: currentKeyID, box: box)
        } catch {
            throw DomainError(.internal, .secretSealFailed, "the secret could not be sealed")
        }
    }

    /// Opens a TOTP secret sealed for this user. A box sealed for another
    /// user or tenant, altered, or under a key this keyring lacks throws
    /// INTERNAL `SECRET_UNREADABLE` (never the bytes).
    public func openTOTPSecret(_ sealed: SealedSecret, tenant: TenantID, user: UserID) throws -> [UInt8] {
        guard let key = keys[sealed.keyID],
            let secret = try? AESGCM.open(
                sealed.box, key: key, associatedData: Self.totpContext(tenant: tenant, user: user))
        else { throw DomainError.secretUnreadable }
        return secret
    }
}

extension DomainError {
    /// A sealed secret failed to open: moved between rows, altered, or
    /// sealed under a key that is not loaded.
    public static let secretUnreadable = DomainError(
        .internal, .secretUnreadable, "a stored two-factor secret cannot be decrypted")
}
