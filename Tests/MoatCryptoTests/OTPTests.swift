import Testing
@testable import MoatCrypto

@Suite("HOTP and TOTP")
struct OTPTests {
    static let seed20 = utf8("12345678901234567890")
    static let seed32 = utf8("12345678901234567890123456789012")
    static let seed64 = Array(utf8(String(repeating: "1234567890", count: 7)).prefix(64))

    @Test("RFC 4226 Appendix D: all ten HOTP values")
    func rfc4226() throws {
        let expected = ["755224", "287082", "359152", "969429", "338314",
                        "254676", "287922", "162583", "399871", "520489"]
        for (counter, code) in expected.enumerated() {
            #expect(try HOTP.code(secret: Self.seed20, counter: UInt64(counter)) == code, "counter \(counter)")
        }
    }

    struct Row: Sendable, CustomTestStringConvertible {
        let time: Int64
        let counter: UInt64
        let sha1: String
        let sha256: String
        let sha512: String
        var testDescription: String { "t=\(time)" }
    }

    // RFC 6238 Appendix B, as given in shared/data/rfc-test-vectors.md.
    static let rfc6238Rows: [Row] = [
        Row(time: 59, counter: 0x1, sha1: "94287082", sha256: "46119246", sha512: "90693936"),
        Row(time: 1111111109, counter: 0x23523EC, sha1: "07081804", sha256: "68084774", sha512: "25091201"),
        Row(time: 1111111111, counter: 0x23523ED, sha1: "14050471", sha256: "67062674", sha512: "99943326"),
        Row(time: 1234567890, counter: 0x273EF07, sha1: "89005924", sha256: "91819424", sha512: "93441116"),
        Row(time: 2000000000, counter: 0x3F940AA, sha1: "69279037", sha256: "90698825", sha512: "38618901"),
        Row(time: 20000000000, counter: 0x27BC86AA, sha1: "65353130", sha256: "77737706", sha512: "47863826"),
    ]

    @Test("RFC 6238 Appendix B: every row, SHA-1/256/512, 8 digits", arguments: rfc6238Rows)
    func rfc6238(_ row: Row) throws {
        let sha1 = try TOTP(secret: Self.seed20, digits: 8, algorithm: .sha1)
        let sha256 = try TOTP(secret: Self.seed32, digits: 8, algorithm: .sha256)
        let sha512 = try TOTP(secret: Self.seed64, digits: 8, algorithm: .sha512)
        #expect(sha1.counter(at: row.time) == row.counter)
        #expect(try sha1.code(at: row.time) == row.sha1)
        #expect(try sha256.code(at: row.time) == row.sha256)
        #expect(try sha512.code(at: row.time) == row.sha512)
        // Each code verifies at its own time and returns its step.
        #expect(sha1.verify(row.sha1, at: row.time, skew: 0) == row.counter)
        #expect(sha256.verify(row.sha256, at: row.time, skew: 0) == row.counter)
        #expect(sha512.verify(row.sha512, at: row.time, skew: 0) == row.counter)
        // 6-digit codes are the last six digits.
        let sixDigit = try TOTP(secret: Self.seed20)
        #expect(try sixDigit.code(at: row.time) == String(row.sha1.suffix(6)))
    }

    @Test("the seeds are the RFC's")
    func seeds() {
        #expect(Self.seed20.count == 20 && Self.seed32.count == 32 && Self.seed64.count == 64)
        #expect(Base32.encode(Self.seed20) == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
        #expect(Self.seed64.suffix(4) == utf8("1234"))
    }

    @Test("verify accepts one step either side with skew 1 and returns the matched step")
    func verifyWindow() throws {
        let totp = try TOTP(secret: Self.seed20)  // SHA-1, 6 digits, 30 s
        let now: Int64 = 1_700_000_000
        let step = totp.counter(at: now)
        #expect(step == 56_666_666)
        let current = try totp.code(forCounter: step)
        let previous = try totp.code(forCounter: step - 1)
        let next = try totp.code(forCounter: step + 1)
        let twoBack = try totp.code(forCounter: step - 2)
        let twoAhead = try totp.code(forCounter: step + 2)
        #expect(current == (try totp.code(at: now)))

        #expect(totp.verify(current, at: now) == step)
        #expect(totp.verify(previous, at: now) == step - 1)
        #expect(totp.verify(next, at: now) == step + 1)
        #expect(totp.verify(twoBack, at: now) == nil)
        #expect(totp.verify(twoAhead, at: now) == nil)
        // skew 0: only the current step; skew 2 reaches two steps.
        #expect(totp.verify(previous, at: now, skew: 0) == nil)
        #expect(totp.verify(current, at: now, skew: 0) == step)
        #expect(totp.verify(twoBack, at: now, skew: 2) == step - 2)
        // Negative skew behaves as 0; huge skew is clamped, not a crash or hang.
        #expect(totp.verify(current, at: now, skew: -5) == step)
        #expect(totp.verify(previous, at: now, skew: -5) == nil)
        #expect(totp.verify(current, at: now, skew: Int.max) == step)
        // Replay protection is the caller's: the same code gives the same step again.
        #expect(totp.verify(current, at: now + 29 - now % 30) == step)
        // RFC 4226 counter 1 code at t=59 (step 1), verified one step later.
        #expect(totp.verify("287082", at: 89) == 1)
        #expect(totp.verify("287082", at: 119) == nil)
        // Near time zero the window does not underflow.
        #expect(totp.verify("755224", at: 0) == 0)
        #expect(totp.verify("755224", at: -1_000) == 0)
    }

    @Test("when two steps in the window share a code, verify returns the latest")
    func verifyCollision() throws {
        // With the RFC seed, steps 910737 and 910738 both give 911617 (found offline).
        let totp = try TOTP(secret: Self.seed20)
        #expect(try totp.code(forCounter: 910_737) == "911617")
        #expect(try totp.code(forCounter: 910_738) == "911617")
        let time = Int64(910_738) * 30
        #expect(totp.verify("911617", at: time) == 910_738)
        #expect(totp.verify("911617", at: time - 30, skew: 0) == 910_737)
    }

    @Test("verify rejects wrong-length and non-digit input without crashing")
    func verifyRejectsJunk() throws {
        let totp = try TOTP(secret: Self.seed20)
        let now: Int64 = 59
        #expect(totp.verify("287082", at: now) == 1)
        for junk in ["", "28708", "2870820", "94287082", " 287082", "287082 ", "287 082", "28708a",
                     "+87082", "-87082", "２８７０８２", "٢٨٧٠٨٢", "287082\u{0}", "\u{0}", String(repeating: "9", count: 10_000)] {
            #expect(totp.verify(junk, at: now) == nil, "\(junk.prefix(20))")
        }
    }

    @Test("invalid generator parameters throw INVALID_PARAMETERS")
    func invalidParameters() {
        for digits in [0, 5, 9, 10, -1, Int.max] {
            #expect { try TOTP(secret: Self.seed20, digits: digits) } throws: { error in
                (error as? CryptoError)?.reason == .invalidParameters
            }
            #expect { try HOTP.code(secret: Self.seed20, counter: 0, digits: digits) } throws: { error in
                (error as? CryptoError)?.reason == .invalidParameters
            }
        }
        for period in [0, -30, 86_401] {
            #expect { try TOTP(secret: Self.seed20, period: period) } throws: { error in
                (error as? CryptoError)?.reason == .invalidParameters
            }
        }
        #expect { try TOTP(secret: []) } throws: { error in
            (error as? CryptoError)?.reason == .invalidParameters
        }
    }

    @Test("the description never shows the secret")
    func redacted() throws {
        let totp = try TOTP(secret: Self.seed20)
        #expect(!"\(totp)".contains("49"))  // "1" is 0x31 = 49
        #expect("\(totp)".contains("<redacted>"))
        #expect(String(reflecting: totp).contains("<redacted>"))
    }

    @Test("key URI: exact string with spaces, '&' and an email account")
    func keyURI() throws {
        let uri = TOTP.keyURI(issuer: "Acme & Sons Co", account: "jane.doe+2fa@example.com", secret: Self.seed20)
        #expect(uri == "otpauth://totp/Acme%20%26%20Sons%20Co:jane.doe%2B2fa@example.com"
            + "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20%26%20Sons%20Co"
            + "&algorithm=SHA1&digits=6&period=30")
        // Google's own example.
        let example = TOTP.keyURI(issuer: "ACME Co", account: "john.doe@email.com",
                                  secret: Base32.decode("HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ") ?? [])
        #expect(example == "otpauth://totp/ACME%20Co:john.doe@email.com?secret=HXDMVJECJJWSRB3HWIZR4IFUGFTMXBOZ"
            + "&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30")
        // Colons inside a part are escaped; non-ASCII is UTF-8 percent-encoded.
        let tricky = TOTP.keyURI(issuer: "Müller:GmbH", account: "a:b", secret: [0xff])
        #expect(tricky == "otpauth://totp/M%C3%BCller%3AGmbH:a%3Ab?secret=74&issuer=M%C3%BCller%3AGmbH"
            + "&algorithm=SHA1&digits=6&period=30")
        // The instance form carries its own algorithm, digits and period.
        let sha256 = try TOTP(secret: Self.seed20, digits: 8, period: 60, algorithm: .sha256)
        #expect(sha256.keyURI(issuer: "Moat", account: "bob")
            == "otpauth://totp/Moat:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Moat"
            + "&algorithm=SHA256&digits=8&period=60")
    }
}
