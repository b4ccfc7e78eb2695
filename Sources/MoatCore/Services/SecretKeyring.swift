import MoatCrypto
import Synchronization

/// Seals secrets that must be read back (TOTP secrets) with AES-256-GCM
/// under the master key, bound to their owner: the associated data is the
/// purpose, the tenant id and the user id, so a ciphertext copied to another
/// user's or tenant's row fails to open.
///
/// Each sealed secret records the id of the key that sealed it. New secrets
/// are sealed under the current key; older keys may be kept to open what
/// they sealed, so a key can be rotated without re-enrolling anyone.
public struct SecretKeyring: Sendable {
    /// The keys, shared by every copy of the keyring, so a rotation that
    /// switches the current key reaches every service holding one.
    private final class Storage: Sendable {
        struct State {
            var currentKeyID: String
            var keys: [String: [UInt8]]
        }
        let state: Mutex<State>
        init(_ state: State) { self.state = Mutex(state) }
    }

    private let storage: Storage

    /// The id new secrets are sealed under.
    public var currentKeyID: String { storage.state.withLock { $0.currentKeyID } }

    /// The ids of every key loaded (current and retired), sorted.
    public var keyIDs: [String] { storage.state.withLock { $0.keys.keys.sorted() } }

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
        self.storage = Storage(.init(currentKeyID: current.id, keys: keys))
    }

    /// Makes `new` the key new secrets are sealed under; the previous
    /// current key stays loaded to open what it sealed (key rotation).
    /// - Precondition: the key is 32 bytes.
    public func rotate(to new: (id: String, key: [UInt8])) {
        precondition(new.key.count == AESGCM.keyByteCount, "a keyring key must be 32 bytes")
        storage.state.withLock { state in
            state.keys[new.id] = new.key
            state.currentKeyID = new.id
        }
    }

    /// Forgets a retired key once nothing is sealed under it. The current
    /// key is never forgotten.
    public func retire(_ id: String) {
        storage.state.withLock { state in
            guard id != state.currentKeyID else { return }
            state.keys[id] = nil
        }
    }

    /// Opens a secret sealed under any loaded key and seals it again under
    /// the current one (key rotation). Throws `SECRET_UNREADABLE` for a box
    /// that does not open.
    public func resealTOTPSecret(_ sealed: SealedSecret, tenant: TenantID, user: UserID) throws -> SealedSecret {
        let secret = try openTOTPSecret(sealed, tenant: tenant, user: user)
        return try sealTOTPSecret(secret, tenant: tenant, user: user)
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
        let (id, key) = storage.state.withLock { ($0.currentKeyID, $0.keys[$0.currentKeyID] ?? []) }
        do {
            let box = try AESGCM.seal(secret, key: key, associatedData: Self.totpContext(tenant: tenant, user: user))
            return SealedSecret(keyID: id, box: box)
        } catch {
            throw DomainError(.internal, .secretSealFailed, "the secret could not be sealed")
        }
    }

    /// Whether two sealed boxes hold the same secret for this user: equal
    /// boxes, or boxes that open to equal bytes (a key rotation re-seals a
    /// secret without changing it). False when either does not open.
    public func sealSameTOTPSecret(_ first: SealedSecret, _ second: SealedSecret, tenant: TenantID, user: UserID) -> Bool {
        if first == second { return true }
        guard let one = try? openTOTPSecret(first, tenant: tenant, user: user),
            let other = try? openTOTPSecret(second, tenant: tenant, user: user)
        else { return false }
        return ConstantTime.equals(one, other)
    }

    /// Opens a TOTP secret sealed for this user. A box sealed for another
    /// user or tenant, altered, or under a key this keyring lacks throws
    /// INTERNAL `SECRET_UNREADABLE` (never the bytes).
    public func openTOTPSecret(_ sealed: SealedSecret, tenant: TenantID, user: UserID) throws -> [UInt8] {
        guard let key = storage.state.withLock({ $0.keys[sealed.keyID] }),
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
