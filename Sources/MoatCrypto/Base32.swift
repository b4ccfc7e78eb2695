/// Base32 with the RFC 4648 section 6 alphabet (`A-Z`, `2-7`), as used for
/// TOTP secrets by authenticator apps.
public enum Base32 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// Encodes `bytes` as upper-case base32 without `=` padding.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.append(alphabet[Int((buffer >> UInt32(bits)) & 0x1F)])
            }
            buffer &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 {
            out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 0x1F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes base32 text as a person might type or paste it.
    ///
    /// Case-insensitive; spaces and hyphens anywhere are ignored; trailing `=`
    /// padding is accepted but not required. Returns `nil` for any other
    /// character, for `=` followed by data, and for a length no encoder can
    /// produce (1, 3 or 6 characters past a multiple of 8). Unused low bits of
    /// the last character are ignored.
    public static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.utf8.count)
        var sawPadding = false
        for c in text.utf8 {
            switch c {
            case UInt8(ascii: " "), UInt8(ascii: "-"):
                continue
            case UInt8(ascii: "="):
                sawPadding = true
                continue
            default:
                break
            }
            if sawPadding { return nil }
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(c - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(c - UInt8(ascii: "a"))
            case UInt8(ascii: "2")...UInt8(ascii: "7"): values.append(c - UInt8(ascii: "2") + 26)
            default: return nil
            }
        }
        switch values.count % 8 {
        case 1, 3, 6: return nil
        default: break
        }
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 5 / 8)
        var buffer: UInt32 = 0
        var bits = 0
        for v in values {
            buffer = (buffer << 5) | UInt32(v)
            bits += 5
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
                buffer &= (1 << UInt32(bits)) - 1
            }
        }
        return out
    }

    /// Splits `text` into space-separated groups of `size` characters for
    /// reading aloud or typing, e.g. `"JBSW Y3DP EHPK 3PXP"`. A `size` below 1
    /// returns `text` unchanged.
    public static func grouped(_ text: String, by size: Int = 4) -> String {
        guard size > 0 else { return text }
        var out = ""
        out.reserveCapacity(text.count + text.count / size)
        var n = 0
        for ch in text {
            if n > 0, n % size == 0 { out.append(" ") }
            out.append(ch)
            n += 1
        }
        return out
    }
}
