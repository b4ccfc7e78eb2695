import Testing
@testable import MoatCrypto

@Suite("AES-256-GCM")
struct AESGCMTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        let key: String
        let plaintext: String
        let aad: String
        let nonce: String
        let ciphertext: String
        let tag: String
        var testDescription: String { name }
    }

    static let key15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
    static let plaintext64 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
    static let ciphertext64 = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"

    // McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-16 (AES-256).
    static let nist: [Vector] = [
        Vector(name: "GCM test case 13", key: String(repeating: "00", count: 32), plaintext: "", aad: "",
               nonce: String(repeating: "00", count: 12), ciphertext: "",
               tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        Vector(name: "GCM test case 14", key: String(repeating: "00", count: 32),
               plaintext: String(repeating: "00", count: 16), aad: "",
               nonce: String(repeating: "00", count: 12), ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
               tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        Vector(name: "GCM test case 15", key: key15, plaintext: plaintext64, aad: "",
               nonce: "cafebabefacedbaddecaf888", ciphertext: ciphertext64,
               tag: "b094dac5d93471bdec1a502270e3cc6c"),
        Vector(name: "GCM test case 16", key: key15, plaintext: String(plaintext64.prefix(120)),
               aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
               nonce: "cafebabefacedbaddecaf888", ciphertext: String(ciphertext64.prefix(120)),
               tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test("NIST GCM test vectors with explicit nonce", arguments: nist)
    func nistVectors(_ v: Vector) throws {
        let sealed = try AESGCM.seal(hex(v.plaintext), key: hex(v.key), nonce: hex(v.nonce), associatedData: hex(v.aad))
        #expect(hexString(sealed) == v.nonce + v.ciphertext + v.tag)
        let opened = try AESGCM.open(sealed, key: hex(v.key), associatedData: hex(v.aad))
        #expect(opened == hex(v.plaintext))
    }

    @Test("round trip with associated data, fresh nonce each time")
    func roundTrip() throws {
        let key = try SecureRandom.bytes(32)
        let secret = utf8("JBSWY3DPEHPK3PXP")
        let aad = utf8("tenant=t1;user=u42")
        let a = try AESGCM.seal(secret, key: key, associatedData: aad)
        let b = try AESGCM.seal(secret, key: key, associatedData: aad)
        #expect(a.count == secret.count + 28)
        #expect(a != b)  // random nonces
        #expect(try AESGCM.open(a, key: key, associatedData: aad) == secret)
        #expect(try AESGCM.open(b, key: key, associatedData: aad) == secret)
        // Empty plaintext and empty AAD round trip too.
        #expect(try AESGCM.open(try AESGCM.seal([], key: key), key: key) == [])
    }

    @Test("tampering or the wrong key fails with DECRYPT_FAILED")
    func tampering() throws {
        let key = try SecureRandom.bytes(32)
        let aad = utf8("tenant=t1;user=u42")
        let sealed = try AESGCM.seal(utf8("a TOTP secret"), key: key, associatedData: aad)

        func expectDecryptFailed(_ box: [UInt8], key: [UInt8] = key, aad: [UInt8] = aad,
                                 sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                let opened = try AESGCM.open(box, key: key, associatedData: aad)
                Issue.record("opened a tampered box: \(opened)", sourceLocation: sourceLocation)
            } catch {
                #expect(error.reason == .decryptFailed, sourceLocation: sourceLocation)
                #expect(error.reason.rawValue == "DECRYPT_FAILED", sourceLocation: sourceLocation)
            }
        }

        var nonceFlipped = sealed
        nonceFlipped[0] ^= 1
        expectDecryptFailed(nonceFlipped)
        var cipherFlipped = sealed
        cipherFlipped[12] ^= 0x80
        expectDecryptFailed(cipherFlipped)
        var tagFlipped = sealed
        tagFlipped[sealed.count - 1] ^= 1
        expectDecryptFailed(tagFlipped)
        expectDecryptFailed(sealed, aad: utf8("tenant=t1;user=u43"))
        expectDecryptFailed(sealed, aad: [])
        var otherKey = key
        otherKey[31] ^= 1
        expectDecryptFailed(sealed, key: otherKey)
        expectDecryptFailed(Array(sealed.dropLast()))
        expectDecryptFailed(Array(sealed.prefix(27)))
        expectDecryptFailed([])
        // The untouched box still opens.
        #expect(try AESGCM.open(sealed, key: key, associatedData: aad) == utf8("a TOTP secret"))
    }

    @Test("bad key and nonce lengths are rejected")
    func badLengths() throws {
        #expect(throws: CryptoError(.invalidKeyLength, "AES-256-GCM key must be 32 bytes, got 16")) {
            try AESGCM.seal([1, 2, 3], key: repeated(0, 16))
        }
        #expect { try AESGCM.open(repeated(0, 40), key: repeated(0, 31)) } throws: { error in
            (error as? CryptoError)?.reason == .invalidKeyLength
        }
        #expect { try AESGCM.seal([1], key: repeated(0, 32), nonce: repeated(0, 16)) } throws: { error in
            (error as? CryptoError)?.reason == .invalidNonceLength
        }
    }
}
