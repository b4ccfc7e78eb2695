import Testing
@testable import MoatCrypto

@Suite("Base32, Base64URL, constant-time compare, random")
struct EncodingTests {
    // RFC 4648 section 10, base32, padding removed.
    static let rfc4648Base32: [(String, String)] = [
        ("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI"),
    ]

    @Test("RFC 4648 base32 vectors, without padding")
    func base32Vectors() {
        for (plain, encoded) in Self.rfc4648Base32 {
            #expect(Base32.encode(utf8(plain)) == encoded)
            #expect(Base32.decode(encoded) == utf8(plain))
        }
    }

    @Test("base32 decode is forgiving about case, spaces, hyphens and padding")
    func base32Lenient() {
        #expect(Base32.decode("mzxw6ytboi") == utf8("foobar"))
        #expect(Base32.decode("MZXW 6YTB OI") == utf8("foobar"))
        #expect(Base32.decode("mzxw-6ytb-oi") == utf8("foobar"))
        #expect(Base32.decode("MZXW6YTBOI======") == utf8("foobar"))
        #expect(Base32.decode("MY======") == utf8("f"))
        #expect(Base32.decode("gezd gnbv gy3t qojq gezd gnbv gy3t qojq") == utf8("12345678901234567890"))
        #expect(Base32.decode("") == [])
    }

    @Test("base32 decode rejects invalid input")
    func base32Invalid() {
        for bad in ["MZXW1", "MZXW8", "MZXW6!", "MZ=XW6", "MY=A", "M", "MZX", "MZXW6Y", "MZXW6YT\u{0}",
                    "MZXW6É", "MZXW6\tYT", "0", "MZXW_6"] {
            #expect(Base32.decode(bad) == nil, "\(bad)")
        }
    }

    @Test("base32 round trip and grouping")
    func base32RoundTrip() throws {
        for count in 0...40 {
            let bytes = try SecureRandom.bytes(count)
            #expect(Base32.decode(Base32.encode(bytes)) == bytes)
        }
        #expect(Base32.grouped("JBSWY3DPEHPK3PXP", by: 4) == "JBSW Y3DP EHPK 3PXP")
        #expect(Base32.grouped("JBSWY3DPEH", by: 4) == "JBSW Y3DP EH")
        #expect(Base32.grouped("", by: 4) == "")
        #expect(Base32.grouped("ABC", by: 0) == "ABC")
        #expect(Base32.decode(Base32.grouped("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")) == utf8("12345678901234567890"))
    }

    @Test("base64url vectors, round trip and rejections")
    func base64URL() throws {
        let vectors = [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"),
                       ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            #expect(Base64URL.encode(utf8(plain)) == encoded)
            #expect(Base64URL.decode(encoded) == utf8(plain))
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.decode("-_8") == [0xfb, 0xff])
        for count in 0...50 {
            let bytes = try SecureRandom.bytes(count)
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(Base64URL.decode(text) == bytes)
        }
        let token = try SecureRandom.bytes(32)
        #expect(Base64URL.encode(token).count == 43)
        for bad in ["Zg==", "Zm9v+", "Zm9v/", "Z", "Zm9vY", "Zh", "Zm9", "Zm 9v", "Zm9v\n", "é"] {
            #expect(Base64URL.decode(bad) == nil, "\(bad)")
        }
    }

    @Test("constant-time equality")
    func constantTime() {
        #expect(ConstantTime.equals([], []))
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([0, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(!ConstantTime.equals([], [0]))
    }

    @Test("secure random bytes")
    func random() throws {
        #expect(try SecureRandom.bytes(0) == [])
        let a = try SecureRandom.bytes(32)
        let b = try SecureRandom.bytes(32)
        #expect(a.count == 32 && b.count == 32)
        #expect(a != b)
        #expect(a != repeated(0, 32))
        #expect(try SecureRandom.bytes(100_000).count == 100_000)
        #expect { try SecureRandom.bytes(-1) } throws: { error in
            (error as? CryptoError)?.reason == .invalidParameters
        }
        #expect { try SecureRandom.bytes(Int.max) } throws: { error in
            (error as? CryptoError)?.reason == .inputTooLarge
        }
    }
}
