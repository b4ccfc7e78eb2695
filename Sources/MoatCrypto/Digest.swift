internal import COpenSSL

/// The hash functions MoatCrypto offers for HMAC and one-time passwords.
public enum HashAlgorithm: String, Sendable, Hashable, CaseIterable {
    /// SHA-1 (20-byte output). Only for HMAC-based OTP, where it is still sound.
    case sha1 = "SHA1"
    /// SHA-256 (32-byte output).
    case sha256 = "SHA256"
    /// SHA-512 (64-byte output).
    case sha512 = "SHA512"

    /// The digest length in bytes: 20, 32 or 64.
    public var outputLength: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha512: 64
        }
    }

    /// The fetched OpenSSL digest, or `nil` if this OpenSSL cannot provide it.
    var evpMD: OpaquePointer? {
        switch self {
        case .sha1: fetchedSHA1
        case .sha256: fetchedSHA256
        case .sha512: fetchedSHA512
        }
    }
}

// Digests are fetched once (explicit fetch: no per-call provider lookup).
// A fetched EVP_MD is immutable and safe to share between threads, so the
// unchecked sendability is sound. Swift initializes globals exactly once.
nonisolated(unsafe) private let fetchedSHA1: OpaquePointer? = EVP_MD_fetch(nil, "SHA1", nil)
nonisolated(unsafe) private let fetchedSHA256: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil)
nonisolated(unsafe) private let fetchedSHA512: OpaquePointer? = EVP_MD_fetch(nil, "SHA512", nil)

/// SHA-256 (FIPS 180-4) through OpenSSL.
public enum SHA256 {
    /// The digest length in bytes.
    public static let byteCount = 32

    /// Returns the 32-byte SHA-256 digest of `data`.
    ///
    /// This is the session-validation hot path: for contiguous input
    /// (`[UInt8]`, `ArraySlice`, a native `String`'s `utf8` view) the only Swift
    /// allocation is the 32-byte result.
    ///
    /// - Throws: ``CryptoError/Reason/digestFailed`` only if OpenSSL fails
    ///   internally (out of memory); never because of the input.
    public static func hash(_ data: some Collection<UInt8>) throws(CryptoError) -> [UInt8] {
        let result: Result<[UInt8], CryptoError>
        if let direct = data.withContiguousStorageIfAvailable({ digest(UnsafeRawBufferPointer($0)) }) {
            result = direct
        } else {
            result = Array(data).withUnsafeBytes { digest($0) }
        }
        return try result.get()
    }

    private static func digest(_ input: UnsafeRawBufferPointer) -> Result<[UInt8], CryptoError> {
        guard let md = fetchedSHA256 else {
            return .failure(CryptoError(.digestFailed, "OpenSSL provides no SHA256"))
        }
        var ok = false
        let out = [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
            buffer.initialize(repeating: 0)
            initialized = byteCount
            var length: UInt32 = 0
            ok = EVP_Digest(input.baseAddress, input.count, buffer.baseAddress, &length, md, nil) == 1
                && Int(length) == byteCount
        }
        guard ok else {
            ERR_clear_error()
            return .failure(CryptoError(.digestFailed, "EVP_Digest(SHA256) failed"))
        }
        return .success(out)
    }
}

/// HMAC (RFC 2104) through OpenSSL's one-shot `HMAC()` (not deprecated in 3.x).
public enum HMAC {
    /// Returns the HMAC of `message` under `key` with `algorithm`; the result is
    /// ``HashAlgorithm/outputLength`` bytes long. Any key length is accepted
    /// (keys longer than the block size are hashed, as RFC 2104 says).
    ///
    /// - Throws: ``CryptoError/Reason/inputTooLarge`` for a key of 2 GiB or more;
    ///   ``CryptoError/Reason/digestFailed`` if OpenSSL fails internally.
    public static func authenticate(
        _ algorithm: HashAlgorithm, key: some Collection<UInt8>, message: some Collection<UInt8>
    ) throws(CryptoError) -> [UInt8] {
        let keyBytes = Array(key)
        let result: Result<[UInt8], CryptoError>
        if let direct = message.withContiguousStorageIfAvailable({ buffer in
            mac(algorithm, key: keyBytes, message: UnsafeRawBufferPointer(buffer))
        }) {
            result = direct
        } else {
            result = Array(message).withUnsafeBytes { mac(algorithm, key: keyBytes, message: $0) }
        }
        return try result.get()
    }

    private static func mac(
        _ algorithm: HashAlgorithm, key: [UInt8], message: UnsafeRawBufferPointer
    ) -> Result<[UInt8], CryptoError> {
        guard let md = algorithm.evpMD else {
            return .failure(CryptoError(.digestFailed, "OpenSSL provides no \(algorithm.rawValue)"))
        }
        guard let keyLength = Int32(exactly: key.count) else {
            return .failure(CryptoError(.inputTooLarge, "HMAC key of \(key.count) bytes"))
        }
        let size = algorithm.outputLength
        // OpenSSL 3.0 rejects a NULL key pointer even with length 0, and an empty
        // Swift array may have no storage: always pass a real (possibly 1-byte) buffer.
        let keyStorage = key.isEmpty ? [0] : key
        // Likewise never pass a NULL message pointer.
        let emptyMessage: [UInt8] = [0]
        var ok = false
        let out = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            buffer.initialize(repeating: 0)
            initialized = size
            var length: UInt32 = 0
            ok = keyStorage.withUnsafeBytes { keyBuffer in
                emptyMessage.withUnsafeBytes { placeholder in
                    let data = message.baseAddress ?? placeholder.baseAddress
                    return COpenSSL.HMAC(
                        md, keyBuffer.baseAddress, keyLength,
                        data?.assumingMemoryBound(to: UInt8.self), message.count,
                        buffer.baseAddress, &length) != nil
                }
            } && Int(length) == size
        }
        guard ok else {
            ERR_clear_error()
            return .failure(CryptoError(.digestFailed, "HMAC(\(algorithm.rawValue)) failed"))
        }
        return .success(out)
    }
}
