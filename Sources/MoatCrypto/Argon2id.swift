internal import CArgon2

/// Cost and size parameters for Argon2id. The defaults are OWASP's
/// recommendation: 19 MiB of memory, 2 passes, 1 lane, 16-byte salt, 32-byte hash.
public struct Argon2Parameters: Sendable, Hashable {
    /// Memory cost in KiB (`m`). At least 8 × `parallelism`, at most ``maximumMemoryKiB``.
    public var memoryKiB: Int
    /// Number of passes over memory (`t`), 1...``maximumIterations``.
    public var iterations: Int
    /// Number of lanes and threads (`p`), 1...``maximumParallelism``.
    public var parallelism: Int
    /// Length of the random salt in bytes, 8...64.
    public var saltLength: Int
    /// Length of the hash (tag) in bytes, 16...64.
    public var hashLength: Int

    /// Upper bound on ``memoryKiB`` (4 GiB), for hashing and for verifying
    /// stored hashes, so a corrupt or hostile PHC string cannot exhaust memory.
    public static let maximumMemoryKiB = 4 * 1024 * 1024
    /// Upper bound on ``iterations``.
    public static let maximumIterations = 64
    /// Upper bound on ``parallelism``.
    public static let maximumParallelism = 64

    /// Creates parameters; the defaults are the OWASP baseline (m=19456, t=2, p=1).
    public init(
        memoryKiB: Int = 19456, iterations: Int = 2, parallelism: Int = 1,
        saltLength: Int = 16, hashLength: Int = 32
    ) {
        self.memoryKiB = memoryKiB
        self.iterations = iterations
        self.parallelism = parallelism
        self.saltLength = saltLength
        self.hashLength = hashLength
    }

    /// Whether every field is inside the limits documented on it.
    public var isValid: Bool {
        (1...Self.maximumParallelism).contains(parallelism)
            && (1...Self.maximumIterations).contains(iterations)
            && memoryKiB >= 8 * parallelism && memoryKiB <= Self.maximumMemoryKiB
            && (8...64).contains(saltLength)
            && (16...64).contains(hashLength)
    }
}

/// Argon2id password hashing (RFC 9106) through the reference libargon2,
/// stored as PHC strings: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
///
/// Hashing is deliberately slow and memory-hungry: call it from a bounded pool,
/// never from an event loop.
public enum Argon2id {
    /// Hashes `password` with a fresh random salt and returns the PHC string.
    ///
    /// - Throws: ``CryptoError/Reason/invalidParameters`` for parameters outside
    ///   ``Argon2Parameters/isValid``; ``CryptoError/Reason/inputTooLarge`` for a
    ///   password of 4 GiB or more; ``CryptoError/Reason/passwordHashFailed`` if
    ///   libargon2 fails (for example, cannot allocate the memory);
    ///   ``CryptoError/Reason/randomFailed``.
    public static func hash(
        password: [UInt8], parameters: Argon2Parameters = Argon2Parameters()
    ) throws(CryptoError) -> String {
        try check(parameters, passwordCount: password.count)
        let salt = try SecureRandom.bytes(parameters.saltLength)
        let t = UInt32(parameters.iterations), m = UInt32(parameters.memoryKiB)
        let p = UInt32(parameters.parallelism)
        // argon2_encodedlen counts the terminating NUL.
        let capacity = argon2_encodedlen(
            t, m, p, UInt32(parameters.saltLength), UInt32(parameters.hashLength), Argon2_id)
        var encoded = [CChar](repeating: 0, count: capacity + 1)
        let rc = password.withUnsafeBytes { pwd in
            salt.withUnsafeBytes { s in
                encoded.withUnsafeMutableBufferPointer { out in
                    argon2id_hash_encoded(
                        t, m, p, pwd.baseAddress, pwd.count, s.baseAddress, s.count,
                        parameters.hashLength, out.baseAddress, out.count)
                }
            }
        }
        guard rc == ARGON2_OK.rawValue else {
            throw CryptoError(.passwordHashFailed, "argon2id_hash_encoded: \(message(rc))")
        }
        // The buffer is NUL-terminated by libargon2 (and by our extra byte).
        let end = encoded.firstIndex(of: 0) ?? encoded.count
        return String(decoding: encoded[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Returns the raw Argon2id tag (version 0x13) of `password` with `salt`,
    /// and optionally a secret key (pepper) and associated data, as in RFC 9106.
    /// `parameters.saltLength` is ignored: the salt given is used as is (8 bytes
    /// or more). For known-answer tests and key derivation.
    ///
    /// - Throws: ``CryptoError/Reason/invalidParameters``,
    ///   ``CryptoError/Reason/inputTooLarge``, ``CryptoError/Reason/passwordHashFailed``.
    public static func hashRaw(
        password: [UInt8], salt: [UInt8], secret: [UInt8] = [], associatedData: [UInt8] = [],
        parameters: Argon2Parameters = Argon2Parameters()
    ) throws(CryptoError) -> [UInt8] {
        var checked = parameters
        checked.saltLength = 16  // the real salt length is checked below
        try check(checked, passwordCount: password.count)
        guard salt.count >= 8 else {
            throw CryptoError(.invalidParameters, "Argon2 salt must be at least 8 bytes")
        }
        guard let saltCount = UInt32(exactly: salt.count),
              let secretCount = UInt32(exactly: secret.count),
              let adCount = UInt32(exactly: associatedData.count)
        else {
            throw CryptoError(.inputTooLarge, "Argon2 salt, secret or associated data too large")
        }
        // argon2_ctx takes mutable pointers (it can wipe inputs if asked; we do
        // not ask): work on private copies so the callers' arrays are untouched.
        var pwd = password, saltCopy = salt, secretCopy = secret, ad = associatedData
        var out = [UInt8](repeating: 0, count: parameters.hashLength)
        let rc = pwd.withUnsafeMutableBufferPointer { pwdBuf in
            saltCopy.withUnsafeMutableBufferPointer { saltBuf in
                secretCopy.withUnsafeMutableBufferPointer { secretBuf in
                    ad.withUnsafeMutableBufferPointer { adBuf in
                        out.withUnsafeMutableBufferPointer { outBuf in
                            var context = argon2_context(
                                out: outBuf.baseAddress, outlen: UInt32(outBuf.count),
                                pwd: pwdBuf.baseAddress, pwdlen: UInt32(pwdBuf.count),
                                salt: saltBuf.baseAddress, saltlen: saltCount,
                                secret: secretBuf.baseAddress, secretlen: secretCount,
                                ad: adBuf.baseAddress, adlen: adCount,
                                t_cost: UInt32(parameters.iterations),
                                m_cost: UInt32(parameters.memoryKiB),
                                lanes: UInt32(parameters.parallelism),
                                threads: UInt32(parameters.parallelism),
                                version: UInt32(ARGON2_VERSION_13.rawValue),
                                allocate_cbk: nil, free_cbk: nil,
                                flags: 0)  // ARGON2_DEFAULT_FLAGS: wipe nothing
                            return argon2_ctx(&context, Argon2_id)
                        }
                    }
                }
            }
        }
        guard rc == ARGON2_OK.rawValue else {
            throw CryptoError(.passwordHashFailed, "argon2_ctx: \(message(rc))")
        }
        return out
    }

    /// Returns `true` when `password` matches the Argon2id PHC string `phc`.
    ///
    /// Never throws and never crashes: a malformed PHC string, another Argon2
    /// variant, a string with an embedded NUL, or costs above the
    /// ``Argon2Parameters`` maxima all return `false`. The hash comparison inside
    /// libargon2 is constant-time.
    public static func verify(password: [UInt8], phc: String) -> Bool {
        guard let stored = PHC(phc) else { return false }
        guard stored.memoryKiB <= Argon2Parameters.maximumMemoryKiB,
              stored.iterations <= Argon2Parameters.maximumIterations,
              stored.parallelism <= Argon2Parameters.maximumParallelism,
              password.count < Int(UInt32.max)
        else { return false }
        // withCString hands libargon2 a NUL-terminated copy that lives for the call;
        // PHC(_:) has already rejected embedded NULs.
        let rc = phc.withCString { encoded in
            password.withUnsafeBytes { pwd in
                argon2id_verify(encoded, pwd.baseAddress ?? UnsafeRawPointer(encoded), pwd.count)
            }
        }
        return rc == ARGON2_OK.rawValue
    }

    /// Returns `true` when the PHC string should be re-hashed with `parameters`:
    /// it is unparsable, not Argon2id, not version 19, or its memory, iterations,
    /// parallelism, salt length or hash length differ from `parameters`.
    /// Call after a successful ``verify(password:phc:)``.
    public static func needsRehash(
        phc: String, parameters: Argon2Parameters = Argon2Parameters()
    ) -> Bool {
        guard let stored = PHC(phc) else { return true }
        return stored.version != 19
            || stored.memoryKiB != parameters.memoryKiB
            || stored.iterations != parameters.iterations
            || stored.parallelism != parameters.parallelism
            || stored.saltLength != parameters.saltLength
            || stored.hashLength != parameters.hashLength
    }

    private static func check(_ parameters: Argon2Parameters, passwordCount: Int) throws(CryptoError) {
        guard parameters.isValid else {
            throw CryptoError(
                .invalidParameters,
                "Argon2 parameters out of range: m=\(parameters.memoryKiB) t=\(parameters.iterations) "
                    + "p=\(parameters.parallelism) salt=\(parameters.saltLength) hash=\(parameters.hashLength)")
        }
        guard passwordCount < Int(UInt32.max) else {
            throw CryptoError(.inputTooLarge, "password too long for Argon2")
        }
    }

    private static func message(_ code: Int32) -> String {
        guard let text = argon2_error_message(code) else { return "error \(code)" }
        return String(cString: text)
    }
}

/// The fields of an Argon2id PHC string, parsed strictly in Swift (without libargon2).
struct PHC: Equatable {
    var version: Int
    var memoryKiB: Int
    var iterations: Int
    var parallelism: Int
    var saltLength: Int
    var hashLength: Int

    /// Parses `$argon2id$v=<n>$m=<n>,t=<n>,p=<n>$<b64 salt>$<b64 hash>`. The
    /// version field may be absent (libargon2 then means 0x10). Returns `nil` for
    /// anything else, including embedded NULs and padded or invalid base64.
    init?(_ text: String) {
        guard text.utf8.count <= 1024, !text.utf8.contains(0) else { return nil }
        var parts = text.split(separator: "$", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5 || parts.count == 6, parts[0].isEmpty, parts[1] == "argon2id" else {
            return nil
        }
        if parts.count == 6 {
            guard parts[2].hasPrefix("v="), let v = PHC.decimal(parts[2].dropFirst(2)) else { return nil }
            version = v
            parts.remove(at: 2)
        } else {
            version = 0x10
        }
        let costs = parts[2].split(separator: ",", omittingEmptySubsequences: false)
        guard costs.count == 3,
              costs[0].hasPrefix("m="), let m = PHC.decimal(costs[0].dropFirst(2)),
              costs[1].hasPrefix("t="), let t = PHC.decimal(costs[1].dropFirst(2)),
              costs[2].hasPrefix("p="), let p = PHC.decimal(costs[2].dropFirst(2)),
              let salt = PHC.base64Length(parts[3]), let hash = PHC.base64Length(parts[4])
        else { return nil }
        memoryKiB = m
        iterations = t
        parallelism = p
        saltLength = salt
        hashLength = hash
    }

    /// A canonical decimal (no sign, no leading zero) up to 10 digits.
    private static func decimal(_ s: Substring) -> Int? {
        let digits = s.utf8
        guard !digits.isEmpty, digits.count <= 10,
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              digits.count == 1 || digits.first != UInt8(ascii: "0")
        else { return nil }
        return Int(s)
    }

    /// The byte length of unpadded standard base64 text, or `nil` if invalid.
    private static func base64Length(_ s: String) -> Int? {
        let ok = s.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "+") || c == UInt8(ascii: "/")
        }
        let n = s.utf8.count
        guard ok, n > 0, n % 4 != 1 else { return nil }
        return n * 3 / 4
    }
}
