internal import COpenSSL

/// Cryptographically secure random bytes from OpenSSL's DRBG (`RAND_bytes`).
public enum SecureRandom {
    /// The largest `count` accepted by ``bytes(_:)``: 1 GiB.
    public static let maximumCount = 1 << 30

    /// Returns `count` random bytes.
    ///
    /// - Throws: ``CryptoError/Reason/invalidParameters`` when `count` is negative;
    ///   ``CryptoError/Reason/inputTooLarge`` above ``maximumCount``;
    ///   ``CryptoError/Reason/randomFailed`` if OpenSSL's generator fails (it
    ///   only does when it cannot be seeded, which should never happen on Linux).
    public static func bytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        guard count >= 0 else {
            throw CryptoError(.invalidParameters, "negative random byte count \(count)")
        }
        guard count <= maximumCount else {
            throw CryptoError(.inputTooLarge, "\(count) random bytes requested, at most \(maximumCount)")
        }
        if count == 0 { return [] }
        var ok = false
        let result = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            // Start from zeros so that a failure never leaves uninitialized memory.
            buffer.initialize(repeating: 0)
            initialized = count
            // count <= 1 GiB, so it fits RAND_bytes' int.
            ok = RAND_bytes(buffer.baseAddress, Int32(count)) == 1
        }
        guard ok else {
            ERR_clear_error()
            throw CryptoError(.randomFailed, "RAND_bytes failed")
        }
        return result
    }
}
