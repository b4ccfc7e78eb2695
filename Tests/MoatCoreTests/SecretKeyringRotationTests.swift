import MoatCrypto
import XCTest

@testable import MoatCore

/// Rotating a keyring in place: every copy sees the new current key, the
/// old one opens what it sealed until retired, re-sealing keeps the secret,
/// and the "same secret" check survives a re-seal.
final class SecretKeyringRotationTests: XCTestCase {
    let tenant = TenantID.random()
    let user = UserID.random()
    let secret = SecureBytes.random(20)

    static func key(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: AESGCM.keyByteCount) }

    func testRotateReachesEveryCopyAndRetireForgetsTheOldKey() throws {
        let keyring = SecretKeyring(current: (id: "old", key: Self.key(1)))
        let copy = keyring
        let sealedOld = try keyring.sealTOTPSecret(secret, tenant: tenant, user: user)
        XCTAssertEqual(sealedOld.keyID, "old")

        keyring.rotate(to: (id: "new", key: Self.key(2)))
        XCTAssertEqual(copy.currentKeyID, "new", "a copy held by a service sees the rotation")
        XCTAssertEqual(copy.keyIDs, ["new", "old"])
        let sealedNew = try copy.sealTOTPSecret(secret, tenant: tenant, user: user)
        XCTAssertEqual(sealedNew.keyID, "new")
        XCTAssertEqual(try copy.openTOTPSecret(sealedOld, tenant: tenant, user: user), secret)

        let resealed = try copy.resealTOTPSecret(sealedOld, tenant: tenant, user: user)
        XCTAssertEqual(resealed.keyID, "new")
        XCTAssertNotEqual(resealed.box, sealedOld.box)
        XCTAssertEqual(try copy.openTOTPSecret(resealed, tenant: tenant, user: user), secret)
        XCTAssertTrue(copy.sealSameTOTPSecret(resealed, sealedOld, tenant: tenant, user: user))
        let other = try copy.sealTOTPSecret(SecureBytes.random(20), tenant: tenant, user: user)
        XCTAssertFalse(copy.sealSameTOTPSecret(resealed, other, tenant: tenant, user: user))
        XCTAssertFalse(
            copy.sealSameTOTPSecret(resealed, sealedOld, tenant: tenant, user: UserID.random()),
            "bound to the user")

        keyring.retire("old")
        XCTAssertEqual(copy.keyIDs, ["new"])
        XCTAssertThrowsError(try copy.openTOTPSecret(sealedOld, tenant: tenant, user: user))
        XCTAssertFalse(copy.sealSameTOTPSecret(resealed, sealedOld, tenant: tenant, user: user))
        keyring.retire("new")
        XCTAssertEqual(copy.keyIDs, ["new"], "the current key is never forgotten")
        XCTAssertEqual(try copy.openTOTPSecret(resealed, tenant: tenant, user: user), secret)
    }

    func testResealOfAnUnreadableBoxFails() throws {
        let keyring = SecretKeyring(current: (id: "k", key: Self.key(3)))
        let sealed = try keyring.sealTOTPSecret(secret, tenant: tenant, user: user)
        XCTAssertThrowsError(try keyring.resealTOTPSecret(sealed, tenant: TenantID.random(), user: user)) { error in
            XCTAssertEqual(error as? DomainError, DomainError.secretUnreadable)
        }
    }
}
