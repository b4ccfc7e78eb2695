internal import COpenSSL

/// AES-256-GCM authenticated encryption (NIST SP 800-38D) through OpenSSL.
///
/// Sealed format: `nonce (12 bytes) || ciphertext || tag (16 bytes)`, so a
/// sealed box is always `plaintext.count + 28` bytes. Nonces are random: with
/// 96-bit random nonces keep to well under 2^32 messages per key.
public enum AESGCM {
    /// The key length in bytes (AES-256).
    public static let keyByteCount = 32
    /// The nonce length in bytes.
    public static let nonceByteCount = 12
    /// The authentication tag length in bytes.
    public static let tagByteCount = 16

    /// Encrypts and authenticates `plaintext` (and authenticates `associatedData`)
    /// under a fresh random nonce. Returns `nonce || ciphertext || tag`.
    ///
    /// - Throws: ``CryptoError/Reason/invalidKeyLength`` unless `key` is 32 bytes;
    ///   ``CryptoError/Reason/randomFailed`` or ``CryptoError/Reason/encryptFailed``
    ///   if OpenSSL fails internally.
    public static func seal(
        _ plaintext: [UInt8], key: [UInt8], associatedData: [UInt8] = []
    ) throws(CryptoError) -> [UInt8] {
        try checkKey(key)
        let nonce = try SecureRandom.bytes(nonceByteCount)
        return try seal(plaintext, key: key, nonce: nonce, associatedData: associatedData)
    }

    /// Encrypts with an explicit nonce. Returns `nonce || ciphertext || tag`.
    ///
    /// Reusing a nonce under the same key destroys GCM's security: this variant
    /// exists for known-answer tests. Use ``seal(_:key:associatedData:)``.
    ///
    /// - Throws: ``CryptoError/Reason/invalidKeyLength``,
    ///   ``CryptoError/Reason/invalidNonceLength`` (nonce must be 12 bytes),
    ///   ``CryptoError/Reason/encryptFailed``.
    public static func seal(
        _ plaintext: [UInt8], key: [UInt8], nonce: [UInt8], associatedData: [UInt8] = []
    ) throws(CryptoError) -> [UInt8] {
        try checkKey(key)
        guard nonce.count == nonceByteCount else {
            throw CryptoError(.invalidNonceLength, "AES-GCM nonce must be \(nonceByteCount) bytes, got \(nonce.count)")
        }
        guard plaintext.count <= Int.max - nonceByteCount - tagByteCount - 16 else {
            throw CryptoError(.inputTooLarge, "plaintext too large")
        }
        guard let ctx = EVP_CIPHER_CTX_new() else {
            throw CryptoError(.encryptFailed, "EVP_CIPHER_CTX_new failed")
        }
        defer { EVP_CIPHER_CTX_free(ctx) }

        let total = nonceByteCount + plaintext.count + tagByteCount
        var ok = false
        let sealed = [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
            out.initialize(repeating: 0)
            initialized = total
            guard let base = out.baseAddress else { return }
            for i in 0..<nonceByteCount { out[i] = nonce[i] }
            ok = key.withUnsafeBufferPointer { k in
                nonce.withUnsafeBufferPointer { n in
                    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, k.baseAddress, n.baseAddress) == 1
                }
            }
            && associatedData.withUnsafeBufferPointer { aad in
                update(ctx, output: nil, input: aad, encrypt: true)
            }
            && plaintext.withUnsafeBufferPointer { p in
                update(ctx, output: base + nonceByteCount, input: p, encrypt: true)
            }
            && {
                var finalLength: Int32 = 0
                return EVP_EncryptFinal_ex(ctx, base + nonceByteCount + plaintext.count, &finalLength) == 1
                    && finalLength == 0
            }()
            && EVP_CIPHER_CTX_ctrl(
                ctx, EVP_CTRL_GCM_GET_TAG, Int32(tagByteCount),
                base + nonceByteCount + plaintext.count) == 1
            if !ok { out.update(repeating: 0) }
        }
        guard ok else {
            ERR_clear_error()
            throw CryptoError(.encryptFailed, "AES-256-GCM encryption failed")
        }
        return sealed
    }

    /// Verifies and decrypts `nonce || ciphertext || tag` produced by
    /// ``seal(_:key:associatedData:)`` with the same key and associated data.
    ///
    /// - Throws: ``CryptoError/Reason/decryptFailed`` when the box is shorter than
    ///   28 bytes or anything (key, nonce, ciphertext, tag, associated data)
    ///   differs; ``CryptoError/Reason/invalidKeyLength`` unless `key` is 32 bytes.
    ///   No plaintext is ever returned for a box that fails authentication.
    public static func open(
        _ sealed: [UInt8], key: [UInt8], associatedData: [UInt8] = []
    ) throws(CryptoError) -> [UInt8] {
        try checkKey(key)
        guard sealed.count >= nonceByteCount + tagByteCount else {
            throw CryptoError(.decryptFailed, "sealed box too short (\(sealed.count) bytes)")
        }
        guard let ctx = EVP_CIPHER_CTX_new() else {
            throw CryptoError(.decryptFailed, "EVP_CIPHER_CTX_new failed")
        }
        defer { EVP_CIPHER_CTX_free(ctx) }

        let cipherCount = sealed.count - nonceByteCount - tagByteCount
        // Not Array(unsafeUninitializedCapacity:): for an empty ciphertext that
        // initializer writes into the shared empty-array storage, a (benign)
        // data race that ThreadSanitizer reports.
        var plaintext = [UInt8](repeating: 0, count: cipherCount)
        let ok = plaintext.withUnsafeMutableBufferPointer { out in
            let authentic = sealed.withUnsafeBufferPointer { box in
                guard let boxBase = box.baseAddress else { return false }
                let nonce = boxBase
                let cipher = UnsafeBufferPointer(start: boxBase + nonceByteCount, count: cipherCount)
                // EVP_CIPHER_CTX_ctrl wants a mutable pointer for SET_TAG but only reads it.
                var tag = Array(box[(nonceByteCount + cipherCount)...])
                return key.withUnsafeBufferPointer { k in
                    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, k.baseAddress, nonce) == 1
                }
                && associatedData.withUnsafeBufferPointer { aad in
                    update(ctx, output: nil, input: aad, encrypt: false)
                }
                && update(ctx, output: out.baseAddress, input: cipher, encrypt: false)
                && tag.withUnsafeMutableBytes { t in
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(tagByteCount), t.baseAddress) == 1
                }
                && {
                    var finalLength: Int32 = 0
                    // A scratch byte: GCM writes nothing here, but never pass an
                    // out-of-bounds pointer when the plaintext is empty.
                    var scratch: UInt8 = 0
                    return EVP_DecryptFinal_ex(ctx, &scratch, &finalLength) == 1 && finalLength == 0
                }()
            }
            // Unauthenticated plaintext never leaves this function.
            if !authentic { out.update(repeating: 0) }
            return authentic
        }
        guard ok else {
            ERR_clear_error()
            throw CryptoError(.decryptFailed, "AES-256-GCM authentication failed")
        }
        return plaintext
    }

    private static func checkKey(_ key: [UInt8]) throws(CryptoError) {
        guard key.count == keyByteCount else {
            throw CryptoError(.invalidKeyLength, "AES-256-GCM key must be \(keyByteCount) bytes, got \(key.count)")
        }
    }

    /// Feeds `input` to the cipher in chunks that fit OpenSSL's `int` lengths.
    /// `output == nil` feeds associated data. Empty input is skipped entirely.
    private static func update(
        _ ctx: OpaquePointer, output: UnsafeMutablePointer<UInt8>?,
        input: UnsafeBufferPointer<UInt8>, encrypt: Bool
    ) -> Bool {
        guard let inBase = input.baseAddress, input.count > 0 else { return true }
        var offset = 0
        while offset < input.count {
            let chunk = min(input.count - offset, 1 << 30)
            var written: Int32 = 0
            let out = output.map { $0 + offset }
            let rc = encrypt
                ? EVP_EncryptUpdate(ctx, out, &written, inBase + offset, Int32(chunk))
                : EVP_DecryptUpdate(ctx, out, &written, inBase + offset, Int32(chunk))
            // GCM is a stream mode: every byte in comes straight out.
            guard rc == 1, output == nil || Int(written) == chunk else { return false }
            offset += chunk
        }
        return true
    }
}
