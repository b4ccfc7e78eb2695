import Testing
@testable import MoatCrypto

@Suite("SHA-256")
struct SHA256Tests {
    @Test("FIPS 180 'abc'")
    func abc() throws {
        #expect(hexString(try SHA256.hash(utf8("abc")))
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("empty string")
    func empty() throws {
        #expect(hexString(try SHA256.hash([UInt8]()))
            == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("FIPS 180 two-block message")
    func twoBlocks() throws {
        let message = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        #expect(hexString(try SHA256.hash(utf8(message)))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("contiguous and non-contiguous collections agree")
    func collections() throws {
        let bytes = utf8("abc")
        let expected = try SHA256.hash(bytes)
        #expect(try SHA256.hash("abc".utf8) == expected)
        #expect(try SHA256.hash(bytes[...]) == expected)
        #expect(try SHA256.hash(bytes.lazy.map { $0 }) == expected)  // not contiguous
        #expect(try SHA256.hash(repeated(0, 32)).count == 32)
    }

    @Test("concurrent hashing shares the fetched digest safely")
    func concurrent() async throws {
        let expected = try SHA256.hash(utf8("abc"))
        let expectedMAC = try HMAC.authenticate(.sha1, key: utf8("k"), message: utf8("m"))
        let mismatches = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var bad = 0
                    for _ in 0..<2_000 where (try? SHA256.hash(utf8("abc"))) != expected { bad += 1 }
                    for _ in 0..<500 where (try? HMAC.authenticate(.sha1, key: utf8("k"), message: utf8("m"))) != expectedMAC {
                        bad += 1
                    }
                    return bad
                }
            }
            return await group.reduce(0, +)
        }
        #expect(mismatches == 0)
    }
}

@Suite("HMAC")
struct HMACTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        let key: [UInt8]
        let message: [UInt8]
        let sha256: String
        let sha512: String
        var testDescription: String { name }
    }

    static let largeKey = repeated(0xaa, 131)

    // RFC 4231 section 4 (test case 5, the truncated one, is left out).
    static let rfc4231Vectors: [Vector] = [
        Vector(
            name: "RFC 4231 test case 1", key: repeated(0x0b, 20), message: utf8("Hi There"),
            sha256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            sha512: "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
                + "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
        Vector(
            name: "RFC 4231 test case 2", key: utf8("Jefe"), message: utf8("what do ya want for nothing?"),
            sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            sha512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
                + "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
        Vector(
            name: "RFC 4231 test case 3", key: repeated(0xaa, 20), message: repeated(0xdd, 50),
            sha256: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            sha512: "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
                + "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"),
        Vector(
            name: "RFC 4231 test case 4", key: Array(1...25), message: repeated(0xcd, 50),
            sha256: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            sha512: "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db"
                + "a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"),
        Vector(
            name: "RFC 4231 test case 6", key: largeKey,
            message: utf8("Test Using Larger Than Block-Size Key - Hash Key First"),
            sha256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            sha512: "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
                + "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"),
        Vector(
            name: "RFC 4231 test case 7", key: largeKey,
            message: utf8(
                "This is a test using a larger than block-size key and a larger than block-size data. "
                    + "The key needs to be hashed before being used by the HMAC algorithm."),
            sha256: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            sha512: "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
                + "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"),
    ]

    @Test("RFC 4231 HMAC-SHA-256 and HMAC-SHA-512", arguments: rfc4231Vectors)
    func rfc4231(_ v: Vector) throws {
        #expect(hexString(try HMAC.authenticate(.sha256, key: v.key, message: v.message)) == v.sha256)
        #expect(hexString(try HMAC.authenticate(.sha512, key: v.key, message: v.message)) == v.sha512)
    }

    @Test("RFC 4231 test case 5 (truncated to 128 bits)")
    func rfc4231Truncated() throws {
        let mac = try HMAC.authenticate(.sha256, key: repeated(0x0c, 20), message: utf8("Test With Truncation"))
        #expect(hexString(Array(mac.prefix(16))) == "a3b6167473100ee06e0c796c2955552b")
    }

    @Test("RFC 2202 HMAC-SHA-1")
    func rfc2202() throws {
        #expect(hexString(try HMAC.authenticate(.sha1, key: repeated(0x0b, 20), message: utf8("Hi There")))
            == "b617318655057264e28bc0b6fb378c8ef146be00")
        #expect(hexString(try HMAC.authenticate(.sha1, key: utf8("Jefe"), message: utf8("what do ya want for nothing?")))
            == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        #expect(hexString(try HMAC.authenticate(.sha1, key: repeated(0xaa, 20), message: repeated(0xdd, 50)))
            == "125d7342b9ac11cd91a39af48aa17b4f63f175d3")
        #expect(hexString(try HMAC.authenticate(
            .sha1, key: repeated(0xaa, 80), message: utf8("Test Using Larger Than Block-Size Key - Hash Key First")))
            == "aa4ae5e15272d00e95705637ce8a3b55ed402112")
    }

    @Test("empty key and empty message")
    func empty() throws {
        #expect(hexString(try HMAC.authenticate(.sha256, key: [UInt8](), message: [UInt8]()))
            == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test("output lengths")
    func lengths() throws {
        for algorithm in HashAlgorithm.allCases {
            #expect(try HMAC.authenticate(algorithm, key: utf8("k"), message: utf8("m")).count == algorithm.outputLength)
        }
    }
}
