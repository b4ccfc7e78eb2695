import MoatCrypto

/// Random bytes for tokens and ids.
public enum SecureBytes {
    /// `count` bytes from OpenSSL's CSPRNG. Should OpenSSL ever fail, the
    /// system generator (getrandom, also cryptographically secure) fills in,
    /// so callers never handle an error that cannot happen in practice.
    public static func random(_ count: Int) -> [UInt8] {
        if let bytes = try? SecureRandom.bytes(count) { return bytes }
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}

/// One-time secrets handed to a user (session tokens, reset tokens): 256
/// random bits, base64url. Only their SHA-256 is stored.
public enum OpaqueToken {
    /// A fresh token.
    public static func make() -> String { Base64URL.encode(SecureBytes.random(32)) }

    /// The stored form of a token: its SHA-256.
    public static func hash(_ token: String) -> [UInt8] {
        (try? SHA256.hash(Array(token.utf8))) ?? []
    }
}
