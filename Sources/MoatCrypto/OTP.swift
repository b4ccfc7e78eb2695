/// The HMAC hash of a one-time-password generator. SHA-1 is the default and
/// the only one every authenticator app supports.
public typealias OTPAlgorithm = HashAlgorithm

/// HOTP: HMAC-based one-time passwords (RFC 4226).
public enum HOTP {
    /// The digit counts accepted: 6, 7 or 8.
    public static let supportedDigits = 6...8

    /// Returns the `digits`-digit code (zero-padded) for `counter`.
    ///
    /// - Throws: ``CryptoError/Reason/invalidParameters`` when `digits` is not
    ///   6, 7 or 8; ``CryptoError/Reason/digestFailed`` if HMAC fails internally.
    public static func code(
        secret: [UInt8], counter: UInt64, digits: Int = 6, algorithm: OTPAlgorithm = .sha1
    ) throws(CryptoError) -> String {
        guard supportedDigits.contains(digits) else {
            throw CryptoError(.invalidParameters, "OTP digits must be 6, 7 or 8, got \(digits)")
        }
        return String(decoding: try codeBytes(secret: secret, counter: counter, digits: digits, algorithm: algorithm),
                      as: UTF8.self)
    }

    /// The code as ASCII digit bytes; `digits` must already be validated.
    static func codeBytes(
        secret: [UInt8], counter: UInt64, digits: Int, algorithm: OTPAlgorithm
    ) throws(CryptoError) -> [UInt8] {
        var message = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { message[i] = UInt8(truncatingIfNeeded: counter >> UInt64(56 - 8 * i)) }
        let mac = try HMAC.authenticate(algorithm, key: secret, message: message)
        // Dynamic truncation (RFC 4226 section 5.3).
        let offset = Int(mac[mac.count - 1] & 0x0F)
        let binary = (UInt32(mac[offset]) & 0x7F) << 24 | UInt32(mac[offset + 1]) << 16
            | UInt32(mac[offset + 2]) << 8 | UInt32(mac[offset + 3])
        var value = binary
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: digits)
        for i in stride(from: digits - 1, through: 0, by: -1) {
            out[i] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
        }
        return out
    }
}

/// TOTP: time-based one-time passwords (RFC 6238) with T0 = 0.
///
/// ```swift
/// let totp = try TOTP(secret: secret)            // SHA-1, 6 digits, 30 s
/// if let step = totp.verify(userInput, at: now), step > lastUsedStep {
///     // accept, then store `step` as the last used step (replay protection)
/// }
/// ```
public struct TOTP: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The shared secret (raw bytes, not base32).
    public let secret: [UInt8]
    /// Code length: 6, 7 or 8.
    public let digits: Int
    /// Time step in seconds.
    public let period: Int
    /// The HMAC hash.
    public let algorithm: OTPAlgorithm

    /// A description that never reveals the secret.
    public var description: String {
        "TOTP(algorithm: \(algorithm.rawValue), digits: \(digits), period: \(period), secret: <redacted>)"
    }

    /// Same as ``description``: the secret is never printed.
    public var debugDescription: String { description }

    /// The largest skew ``verify(_:at:skew:)`` honours, in steps either side.
    public static let maximumSkew = 10

    /// Creates a generator. The defaults are what authenticator apps expect.
    ///
    /// - Throws: ``CryptoError/Reason/invalidParameters`` for an empty secret,
    ///   `digits` other than 6, 7 or 8, or a `period` outside 1...86400.
    public init(
        secret: [UInt8], digits: Int = 6, period: Int = 30, algorithm: OTPAlgorithm = .sha1
    ) throws(CryptoError) {
        guard !secret.isEmpty else { throw CryptoError(.invalidParameters, "empty TOTP secret") }
        guard HOTP.supportedDigits.contains(digits) else {
            throw CryptoError(.invalidParameters, "OTP digits must be 6, 7 or 8, got \(digits)")
        }
        guard (1...86_400).contains(period) else {
            throw CryptoError(.invalidParameters, "TOTP period must be 1...86400 s, got \(period)")
        }
        self.secret = secret
        self.digits = digits
        self.period = period
        self.algorithm = algorithm
    }

    /// The time step containing `unixTime` (seconds since 1970): `floor(t / period)`.
    /// Times before 1970 map to step 0.
    public func counter(at unixTime: Int64) -> UInt64 {
        unixTime <= 0 ? 0 : UInt64(unixTime / Int64(period))
    }

    /// The code at `unixTime`.
    ///
    /// - Throws: ``CryptoError/Reason/digestFailed`` only if HMAC fails internally.
    public func code(at unixTime: Int64) throws(CryptoError) -> String {
        try code(forCounter: counter(at: unixTime))
    }

    /// The code for an explicit time step.
    ///
    /// - Throws: ``CryptoError/Reason/digestFailed`` only if HMAC fails internally.
    public func code(forCounter counter: UInt64) throws(CryptoError) -> String {
        String(decoding: try HOTP.codeBytes(secret: secret, counter: counter, digits: digits, algorithm: algorithm),
               as: UTF8.self)
    }

    /// Checks `code` against the steps from `skew` before to `skew` after the step
    /// of `unixTime`, and returns the step that matched, or `nil`.
    ///
    /// The caller must enforce replay protection: accept only if the returned
    /// step is greater than the last step used for this secret, then store it.
    ///
    /// `code` must be exactly ``digits`` ASCII digits; anything else (spaces,
    /// other lengths, non-ASCII digits) returns `nil`. Every candidate step is
    /// computed and compared in constant time, whether or not one matched. If
    /// several steps match (a one-in-10^digits coincidence), the latest is
    /// returned. `skew` is clamped to 0...``maximumSkew``. Returns `nil` as well
    /// if HMAC fails internally (fails closed).
    public func verify(_ code: String, at unixTime: Int64, skew: Int = 1) -> UInt64? {
        let input = Array(code.utf8)
        guard input.count == digits,
              input.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        let window = UInt64(min(max(skew, 0), Self.maximumSkew))
        let current = counter(at: unixTime)
        let first = current >= window ? current - window : 0
        let last = current <= UInt64.max - window ? current + window : UInt64.max
        guard first <= last else { return nil }
        var matched: UInt64?
        for step in first...last {
            guard let expected = try? HOTP.codeBytes(
                secret: secret, counter: step, digits: digits, algorithm: algorithm)
            else { return nil }
            if ConstantTime.equals(expected, input) { matched = step }
        }
        return matched
    }

    /// The `otpauth://` key URI for this generator (Google Authenticator's Key
    /// Uri Format); see ``keyURI(issuer:account:secret:algorithm:digits:period:)``.
    public func keyURI(issuer: String, account: String) -> String {
        Self.keyURI(issuer: issuer, account: account, secret: secret,
                    algorithm: algorithm, digits: digits, period: period)
    }

    /// Builds `otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`.
    ///
    /// Issuer and account are UTF-8 percent-encoded everywhere: every byte except
    /// `A-Z a-z 0-9 - . _ ~ @` is escaped, so a space is `%20` (never `+`), `&` is
    /// `%26` and a `:` inside either part is `%3A`; the `:` between them is
    /// literal. The secret is unpadded upper-case base32. An empty issuer gives
    /// the label `ACCOUNT` and no `issuer` parameter.
    public static func keyURI(
        issuer: String, account: String, secret: [UInt8],
        algorithm: OTPAlgorithm = .sha1, digits: Int = 6, period: Int = 30
    ) -> String {
        let encodedIssuer = percentEncode(issuer)
        let label = issuer.isEmpty ? percentEncode(account) : encodedIssuer + ":" + percentEncode(account)
        var uri = "otpauth://totp/" + label + "?secret=" + Base32.encode(secret)
        if !issuer.isEmpty { uri += "&issuer=" + encodedIssuer }
        uri += "&algorithm=" + algorithm.rawValue + "&digits=\(digits)&period=\(period)"
        return uri
    }

    private static func percentEncode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "@"):
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
