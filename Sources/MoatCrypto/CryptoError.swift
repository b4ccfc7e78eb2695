/// The one error type thrown by MoatCrypto.
///
/// `reason` is stable and machine-readable (its raw value is what the server
/// puts in `Status.reason`); `detail` is for humans and logs only and may change.
/// `detail` never contains key material, plaintext or passwords.
public struct CryptoError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The stable, machine-readable cause of a ``CryptoError``.
    public enum Reason: String, Sendable, Hashable, CaseIterable {
        /// The system random generator (`RAND_bytes`) failed. Should never happen.
        case randomFailed = "RANDOM_FAILED"
        /// A digest or HMAC computation failed inside OpenSSL (out of memory or a
        /// broken provider configuration). Should never happen.
        case digestFailed = "DIGEST_FAILED"
        /// AES-GCM encryption failed inside OpenSSL. Should never happen.
        case encryptFailed = "ENCRYPT_FAILED"
        /// AES-GCM authentication failed: wrong key, wrong associated data,
        /// truncated or modified ciphertext, nonce or tag.
        case decryptFailed = "DECRYPT_FAILED"
        /// A key had the wrong length (AES-256-GCM needs exactly 32 bytes).
        case invalidKeyLength = "INVALID_KEY_LENGTH"
        /// A nonce had the wrong length (AES-GCM here uses exactly 12 bytes).
        case invalidNonceLength = "INVALID_NONCE_LENGTH"
        /// A parameter was out of range (negative count, unsupported digit
        /// count, Argon2 costs outside the accepted limits, ...).
        case invalidParameters = "INVALID_PARAMETERS"
        /// An input was larger than the primitive (or this wrapper) accepts.
        case inputTooLarge = "INPUT_TOO_LARGE"
        /// libargon2 reported an error while hashing.
        case passwordHashFailed = "PASSWORD_HASH_FAILED"
        /// libqrencode could not encode the text (empty, or too long for a QR code).
        case qrEncodeFailed = "QR_ENCODE_FAILED"
    }

    /// The stable cause; compare against this, not against `detail`.
    public let reason: Reason
    /// A human-readable explanation for logs. Not stable, never secret.
    public let detail: String

    /// Creates an error with a stable reason and a human-readable detail.
    public init(_ reason: Reason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    /// `REASON: detail`.
    public var description: String { "\(reason.rawValue): \(detail)" }
}
