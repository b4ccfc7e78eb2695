internal import COpenSSL

/// Comparisons whose running time does not depend on where the inputs differ.
public enum ConstantTime {
    /// Returns `true` when `a` and `b` hold the same bytes, using `CRYPTO_memcmp`.
    ///
    /// The time taken depends only on the length; inputs of different lengths
    /// return `false` at once (lengths are not secret: compare fixed-length
    /// values such as MACs, hashes and codes).
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in
                CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, pa.count) == 0
            }
        }
    }
}
