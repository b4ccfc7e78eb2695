import MoatCrypto
import XCTest

@testable import MoatCore

/// New-password rules (length, common list, not the email), exactness (no
/// trimming) and NFC normalization.
final class PasswordRulesTests: XCTestCase {
    static let email = "alice@example.test"

    func check(_ password: String, minimum: Int = 8, email: String = PasswordRulesTests.email) -> DomainError? {
        do {
            try PasswordRules.check(password, minimumLength: minimum, email: email)
            return nil
        } catch {
            return error
        }
    }

    // MARK: The rule

    func testLengthBoundaries() {
        XCTAssertEqual(check(makePassword(length: 7))?.reason, "PASSWORD_TOO_SHORT")
        XCTAssertEqual(check(makePassword(length: 7))?.kind, .invalidArgument)
        XCTAssertEqual(check(makePassword(length: 7))?.details, ["min_length": "8"])
        XCTAssertNil(check(makePassword(length: 8)))
        XCTAssertNil(check(makePassword(length: 1024)))
        XCTAssertEqual(check(makePassword(length: 1025))?.reason, "PASSWORD_TOO_LONG")
        XCTAssertEqual(check(makePassword(length: 1025))?.kind, .invalidArgument)
        XCTAssertEqual(check(makePassword(length: 1025))?.details, ["max_length": "1024"])
        XCTAssertEqual(check("")?.reason, "PASSWORD_TOO_SHORT")
        XCTAssertEqual(check(String(repeating: "z", count: 100_000))?.reason, "PASSWORD_TOO_LONG")
    }

    func testTenantMinimumNeverBelowEight() {
        XCTAssertEqual(check(makePassword(length: 7), minimum: 4)?.reason, "PASSWORD_TOO_SHORT")
        XCTAssertEqual(check(makePassword(length: 7), minimum: 0)?.details["min_length"], "8")
        XCTAssertEqual(check(makePassword(length: 11), minimum: 12)?.details["min_length"], "12")
        XCTAssertNil(check(makePassword(length: 12), minimum: 12))
    }

    func testLengthCountsCharactersOfTheNFCForm() {
        let nfc = "\u{E9}"  // é
        let nfd = "e\u{301}"  // e + combining acute
        // 7 characters typed decomposed are still 7 (14 code points).
        XCTAssertEqual(check(String(repeating: nfd, count: 7))?.reason, "PASSWORD_TOO_SHORT")
        XCTAssertNil(check(String(repeating: nfd, count: 8)))
        XCTAssertNil(check(String(repeating: nfc, count: 8)))
        XCTAssertNil(check(String(repeating: nfd, count: 1024)))
        XCTAssertEqual(check(String(repeating: nfd, count: 1025))?.reason, "PASSWORD_TOO_LONG")
        // Characters, not bytes: 1024 four-byte scalars are fine.
        XCTAssertNil(check(String(repeating: "\u{1F511}", count: 1024)))
        XCTAssertEqual(check(String(repeating: "\u{1F511}", count: 7))?.reason, "PASSWORD_TOO_SHORT")
    }

    func testCommonPasswordsAreRefusedCaseInsensitively() {
        XCTAssertGreaterThan(CommonPasswords.count, 10_000)
        for common in ["password", "PASSWORD", "Password", "12345678", "iloveyou", "QWERTYUIOP", "password1234", "PassWord1234"] {
            let error = check(common)
            XCTAssertEqual(error?.reason, "PASSWORD_TOO_COMMON", common)
            XCTAssertEqual(error?.kind, .invalidArgument, common)
        }
        // Exactly as given: padding makes another password.
        XCTAssertNil(check("  password1234  "))
        XCTAssertNil(check("password1234!"))
    }

    func testTheEmailIsRefusedAsPassword() {
        XCTAssertEqual(check("alice@example.test")?.reason, "PASSWORD_IS_EMAIL")
        XCTAssertEqual(check("Alice@Example.TEST")?.reason, "PASSWORD_IS_EMAIL")
        XCTAssertEqual(check("alice@example.test")?.kind, .invalidArgument)
        XCTAssertNil(check("alice@example.test2"))
        XCTAssertNil(check(" alice@example.test"))
    }

    func testNormalizedIsNFCBytesWithoutTrimming() {
        XCTAssertEqual(PasswordRules.normalized("cafe\u{301}"), Array("caf\u{E9}".utf8))
        XCTAssertEqual(PasswordRules.normalized("caf\u{E9}"), [0x63, 0x61, 0x66, 0xC3, 0xA9])
        XCTAssertEqual(PasswordRules.normalized("  pw  "), Array("  pw  ".utf8))
        XCTAssertEqual(PasswordRules.normalized("\u{212B}"), Array("\u{C5}".utf8))  // Angstrom sign -> Å
    }

    // MARK: Through the service

    func testBoundariesWhenCreatingUsers() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let before = try await world.snapshot()
        for (password, reason) in [
            (makePassword(length: 7), "PASSWORD_TOO_SHORT"), (makePassword(length: 1025), "PASSWORD_TOO_LONG"),
            ("PASSWORD", "PASSWORD_TOO_COMMON"), ("Bob@Acme.test", "PASSWORD_IS_EMAIL"),
        ] {
            await assertDomainError(.invalidArgument, reason) {
                try await world.makeUser(tenant, email: "bob@acme.test", password: password)
            }
        }
        try await assertUnchanged(world, since: before)

        let eight = makePassword(length: 8)
        let longest = makePassword(length: 1024)
        try await world.makeUser(tenant, email: "eight@acme.test", password: eight)
        try await world.makeUser(tenant, email: "longest@acme.test", password: longest)
        _ = try await world.signIn(tenant, "eight@acme.test", eight)
        _ = try await world.signIn(tenant, "longest@acme.test", longest)
        await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
            try await world.signIn(tenant, "longest@acme.test", String(longest.dropLast()))
        }
    }

    func testPasswordIsUsedExactlyAsGiven() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let padded = "  secret-mango-42  "
        try await world.makeUser(tenant, email: "bob@acme.test", password: padded)
        for variant in ["secret-mango-42", "  secret-mango-42", "secret-mango-42  ", "  Secret-mango-42  "] {
            await assertDomainError(.unauthenticated, "INVALID_CREDENTIALS") {
                try await world.signIn(tenant, "bob@acme.test", variant)
            }
        }
        _ = try await world.signIn(tenant, "bob@acme.test", padded)
    }

    func testPasswordSetInNFCSignsInTypedInNFDAndBack() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let nfc = "Cr\u{E8}me-br\u{FB}l\u{E9}e-9"
        let nfd = "Cre\u{300}me-bru\u{302}le\u{301}e-9"
        XCTAssertNotEqual(Array(nfc.utf8), Array(nfd.utf8))

        let user = try await world.makeUser(tenant, email: "nfc@acme.test", password: nfc)
        XCTAssertTrue(Argon2id.verify(password: Array(nfc.utf8), phc: user.passwordHash), "hashed as NFC bytes")
        XCTAssertFalse(Argon2id.verify(password: Array(nfd.utf8), phc: user.passwordHash))
        _ = try await world.signIn(tenant, "nfc@acme.test", nfd)
        _ = try await world.signIn(tenant, "nfc@acme.test", nfc)

        let other = try await world.makeUser(tenant, email: "nfd@acme.test", password: nfd)
        XCTAssertTrue(Argon2id.verify(password: Array(nfc.utf8), phc: other.passwordHash), "hashed as NFC bytes")
        _ = try await world.signIn(tenant, "nfd@acme.test", nfc)
        _ = try await world.signIn(tenant, "nfd@acme.test", nfd)
    }

    /// The longest valid password, set in NFC, typed in NFD (as some input
    /// methods send it) must sign in: NFC normalization and the 1,024
    /// character limit together mean the raw input may be longer than
    /// 4 × 1,024 bytes.
    func testLongestPasswordTypedInNFDSignsIn() async throws {
        let world = try World()
        let (tenant, _) = try await world.makeTenant()
        let nfc = String(repeating: "\u{AC01}", count: 1024)  // 각, one code point in NFC
        let nfd = nfc.decomposedStringWithCanonicalMapping
        XCTAssertEqual(nfd.unicodeScalars.count, 3 * 1024)
        XCTAssertGreaterThan(nfd.utf8.count, 4 * 1024)
        XCTAssertEqual(Array(nfd.precomposedStringWithCanonicalMapping.utf8), Array(nfc.utf8))
        try await world.makeUser(tenant, email: "hangul@acme.test", password: nfc)
        _ = try await world.signIn(tenant, "hangul@acme.test", nfc)
        _ = try await world.signIn(tenant, "hangul@acme.test", nfd)
    }
}
