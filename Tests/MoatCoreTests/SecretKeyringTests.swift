import MoatCrypto
import XCTest

@testable import MoatCore

/// The keyring that seals TOTP secrets at rest: bound to tenant and user,
/// keyed by id, rotatable, tamper-evident.
final class SecretKeyringTests: XCTestCase {
    let tenant = TenantID.random()
    let user = UserID.random()
    let secret = SecureBytes.random(20)

    static func key(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: AESGCM.keyByteCount) }

    func assertUnreadable(
        _ keyring: SecretKeyring, _ sealed: SealedSecret, tenant: TenantID, user: UserID,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            _ = try keyring.openTOTPSecret(sealed, tenant: tenant, user: user)
            XCTFail("the sealed secret opened", file: file, line: line)
        } catch let error as DomainError {
            XCTAssertEqual(error, DomainError.secretUnreadable, file: file, line: line)
            XCTAssertEqual(error.kind, .internal, file: file, line: line)
            XCTAssertEqual(error.reason, "SECRET_UNREADABLE", file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    func testRoundTripUnderTheCurrentKey() throws {
        let keyring = SecretKeyring(current: (id: "k1", key: Self.key(1)))
        let sealed = try keyring.sealTOTPSecret(secret, tenant: tenant, user: user)
        XCTAssertEqual(sealed.keyID, "k1")
        XCTAssertEqual(sealed.box.count, AESGCM.nonceByteCount + secret.count + AESGCM.tagByteCount)
        XCTAssertFalse(containsBytes(sealed.box, secret))
        XCTAssertEqual(try keyring.openTOTPSecret(sealed, tenant: tenant, user: user), secret)
        // A fresh nonce each time.
        let again = try keyring.sealTOTPSecret(secret, tenant: tenant, user: user)
        XCTAssertNotEqual(again.box, sealed.box)
        XCTAssertNotEqual(Array(again.box.prefix(AESGCM.nonceByteCount)), Array(sealed.box.prefix(AESGCM.nonceByteCount)))
    }

    func testOpensOnlyForTheSameTenantAndUser() throws {
        let keyring = SecretKeyring(current: (id: "k1", key: Self.key(1)))
        let sealed = try keyring.sealTOTPSecret(secret, tenant: tenant, user: user)
        assertUnreadable(keyring, sealed, tenant: tenant, user: .random())
        assertUnreadable(keyring, sealed, tenant: .random(), user: user)
        assertUnreadable(keyring, sealed, tenant: .random(), user: .random())
    }

    func testAnotherKeyIDFails() throws {
        let keyring = SecretKeyring(current: (id: "k2", key: Self.key(2)), retired: [(id: "k1", key: Self.key(1))])
        let sealed = try keyring.sealTOTPSecret(secret, tenant: tenant, user: user)
        var renamed = sealed
        renamed.keyID = "k1"
        assertUnreadable(keyring, renamed, tenant: tenant, user: user)
        renamed.keyID = "unknown"
        assertUnreadable(keyring, renamed, tenant: tenant, user: user)
        renamed.keyID = ""
        assertUnreadable(keyring, renamed, tenant: tenant, user: user)
        // A keyring with the same id but another key.
        let impostor = SecretKeyring(current: (id: "k2", key: Self.key(9)))
        assertUnreadable(impostor, sealed, tenant: tenant, user: user)
    }

    func testARetiredKeyStillOpensWhatItSealed() throws {
        let old = SecretKeyring(current: (id: "k1", key: Self.key(1)))
        let sealedOld = try old.sealTOTPSecret(secret, tenant: tenant, user: user)
        let rotated = SecretKeyring(current: (id: "k2", key: Self.key(2)), retired: [(id: "k1", key: Self.key(1))])
        XCTAssertEqual(rotated.currentKeyID, "k2")
        XCTAssertEqual(try rotated.openTOTPSecret(sealedOld, tenant: tenant, user: user), secret)
        let sealedNew = try rotated.sealTOTPSecret(secret, tenant: tenant, user: user)
        XCTAssertEqual(sealedNew.keyID, "k2", "new secrets use the current key")
        // Without the retired key, the old secret is unreadable.
        let dropped = SecretKeyring(current: (id: "k2", key: Self.key(2)))
        assertUnreadable(dropped, sealedOld, tenant: tenant, user: user)
        XCTAssertEqual(try dropped.openTOTPSecret(sealedNew, tenant: tenant, user: user), secret)
        // The old keyring cannot read what the new key sealed.
        assertUnreadable(old, sealedNew, tenant: tenant, user: user)
    }

    func testAnAlteredBoxFails() throws {
        let keyring = SecretKeyring(current: (id: "k1", key: Self.key(1)))
        let sealed = try keyring.sealTOTPSecret(secret, tenant: tenant, user: user)
        // Every byte: nonce, ciphertext and tag.
        for index in sealed.box.indices {
            var altered = sealed
            altered.box[index] ^= 0x01
            assertUnreadable(keyring, altered, tenant: tenant, user: user)
        }
        for length in [0, 1, AESGCM.nonceByteCount, AESGCM.nonceByteCount + AESGCM.tagByteCount, sealed.box.count - 1] {
            assertUnreadable(keyring, SealedSecret(keyID: "k1", box: Array(sealed.box.prefix(length))), tenant: tenant, user: user)
        }
        assertUnreadable(keyring, SealedSecret(keyID: "k1", box: sealed.box + [0]), tenant: tenant, user: user)
    }

    func testEphemeralKeyringsDiffer() throws {
        let first = SecretKeyring.ephemeral()
        let second = SecretKeyring.ephemeral()
        let sealed = try first.sealTOTPSecret(secret, tenant: tenant, user: user)
        XCTAssertEqual(try first.openTOTPSecret(sealed, tenant: tenant, user: user), secret)
        assertUnreadable(second, sealed, tenant: tenant, user: user)
    }
}
