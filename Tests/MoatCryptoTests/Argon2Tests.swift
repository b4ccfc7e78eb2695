import Testing
@testable import MoatCrypto

@Suite("Argon2id")
struct Argon2Tests {
    /// Cheap parameters so the suite stays fast; hashing logic is the same.
    static let fast = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)

    @Test("RFC 9106 section 5.3 Argon2id vector (secret and associated data through argon2_ctx)")
    func rfc9106() throws {
        let tag = try Argon2id.hashRaw(
            password: repeated(0x01, 32), salt: repeated(0x02, 16),
            secret: repeated(0x03, 8), associatedData: repeated(0x04, 12),
            parameters: Argon2Parameters(memoryKiB: 32, iterations: 3, parallelism: 4, hashLength: 32))
        #expect(hexString(tag) == "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659")
    }

    @Test("reference phc-winner-argon2 vector: 'password', 'somesalt', t=2, m=65536, p=1")
    func referenceVector() throws {
        // "somesalt" is 8 bytes, so the matching parameters have saltLength 8.
        let parameters = Argon2Parameters(memoryKiB: 65536, iterations: 2, parallelism: 1, saltLength: 8)
        let tag = try Argon2id.hashRaw(password: utf8("password"), salt: utf8("somesalt"), parameters: parameters)
        #expect(hexString(tag) == "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7")
        // The same hash as a PHC string, as the reference `argon2` CLI prints it.
        let phc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
        #expect(Argon2id.verify(password: utf8("password"), phc: phc))
        #expect(!Argon2id.verify(password: utf8("Password"), phc: phc))
        #expect(!Argon2id.needsRehash(phc: phc, parameters: parameters))
        #expect(Argon2id.needsRehash(phc: phc))  // default parameters differ (m=19456)
        var longerSalt = parameters
        longerSalt.saltLength = 16
        #expect(Argon2id.needsRehash(phc: phc, parameters: longerSalt))
    }

    @Test("hash produces a PHC string with the default OWASP parameters, and verifies")
    func defaultParameters() throws {
        let phc = try Argon2id.hash(password: utf8("correct horse battery staple"))
        #expect(phc.hasPrefix("$argon2id$v=19$m=19456,t=2,p=1$"))
        let fields = phc.split(separator: "$")
        #expect(fields.count == 5)
        #expect(fields.last?.count == 43)  // 32 bytes, unpadded base64
        #expect(fields.dropLast().last?.count == 22)  // 16-byte salt
        #expect(Argon2id.verify(password: utf8("correct horse battery staple"), phc: phc))
        #expect(!Argon2id.verify(password: utf8("correct horse battery stapler"), phc: phc))
        #expect(!Argon2id.needsRehash(phc: phc))
    }

    @Test("round trip, fresh salt, wrong and empty passwords")
    func roundTrip() throws {
        let a = try Argon2id.hash(password: utf8("hunter2"), parameters: Self.fast)
        let b = try Argon2id.hash(password: utf8("hunter2"), parameters: Self.fast)
        #expect(a != b)
        #expect(Argon2id.verify(password: utf8("hunter2"), phc: a))
        #expect(Argon2id.verify(password: utf8("hunter2"), phc: b))
        #expect(!Argon2id.verify(password: utf8("hunter3"), phc: a))
        #expect(!Argon2id.verify(password: [], phc: a))
        let empty = try Argon2id.hash(password: [], parameters: Self.fast)
        #expect(Argon2id.verify(password: [], phc: empty))
        #expect(!Argon2id.verify(password: [0], phc: empty))
        // Passwords are bytes: an embedded NUL is part of the password.
        let nul = try Argon2id.hash(password: [0x61, 0x00, 0x62], parameters: Self.fast)
        #expect(Argon2id.verify(password: [0x61, 0x00, 0x62], phc: nul))
        #expect(!Argon2id.verify(password: [0x61], phc: nul))
    }

    @Test("malformed PHC strings verify false and need a rehash, without crashing")
    func malformed() throws {
        let good = try Argon2id.hash(password: utf8("pw"), parameters: Self.fast)
        let bad = [
            "", "$", "$$$$$", "argon2id", "$argon2id$", "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$", "$argon2id$v=19$m=64,t=1,p=1$$AAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=64,t=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=-64,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=99999999999999999999,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",  // 4 TiB: refused
            "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ=$AAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=64,t=1,p=1$c29t*XNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
            good + "$", good + "x", String(good.dropLast()) + "\u{0}A", good + "\u{0}garbage",
            String(good.dropLast(10)), good.replacingFirst("argon2id", with: "argon2d"),
            "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$" + String(repeating: "A", count: 5000),
        ]
        for phc in bad {
            #expect(!Argon2id.verify(password: utf8("pw"), phc: phc), "\(phc.prefix(80))")
            #expect(Argon2id.needsRehash(phc: phc, parameters: Self.fast), "\(phc.prefix(80))")
        }
        #expect(Argon2id.verify(password: utf8("pw"), phc: good))
    }

    @Test("needsRehash compares m, t, p, version, salt and hash lengths")
    func needsRehash() throws {
        let phc = try Argon2id.hash(password: utf8("pw"), parameters: Self.fast)
        #expect(!Argon2id.needsRehash(phc: phc, parameters: Self.fast))
        var p = Self.fast
        p.memoryKiB = 128
        #expect(Argon2id.needsRehash(phc: phc, parameters: p))
        p = Self.fast
        p.iterations = 2
        #expect(Argon2id.needsRehash(phc: phc, parameters: p))
        p = Self.fast
        p.parallelism = 2
        #expect(Argon2id.needsRehash(phc: phc, parameters: p))
        p = Self.fast
        p.hashLength = 64
        #expect(Argon2id.needsRehash(phc: phc, parameters: p))
        p = Self.fast
        p.saltLength = 32
        #expect(Argon2id.needsRehash(phc: phc, parameters: p))
        // Version 0x10 (no v= field, or v=16) needs a rehash.
        let old = phc.replacingFirst("$v=19", with: "")
        #expect(Argon2id.needsRehash(phc: old, parameters: Self.fast))
        #expect(Argon2id.needsRehash(phc: phc.replacingFirst("v=19", with: "v=16"), parameters: Self.fast))
    }

    @Test("invalid parameters throw INVALID_PARAMETERS")
    func invalidParameters() {
        let invalid = [
            Argon2Parameters(memoryKiB: 4, iterations: 1, parallelism: 1),
            Argon2Parameters(memoryKiB: 64, iterations: 0, parallelism: 1),
            Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 0),
            Argon2Parameters(memoryKiB: -1, iterations: 1, parallelism: 1),
            Argon2Parameters(memoryKiB: Int.max, iterations: Int.max, parallelism: Int.max),
            Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1, saltLength: 4),
            Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1, hashLength: 8),
        ]
        for parameters in invalid {
            #expect(!parameters.isValid)
            #expect { try Argon2id.hash(password: utf8("pw"), parameters: parameters) } throws: { error in
                (error as? CryptoError)?.reason == .invalidParameters
            }
        }
        #expect { try Argon2id.hashRaw(password: utf8("pw"), salt: [1, 2, 3], parameters: Self.fast) } throws: { error in
            (error as? CryptoError)?.reason == .invalidParameters
        }
        #expect(Argon2Parameters().isValid)
    }
}

extension String {
    /// `self` with the first occurrence of `target` replaced.
    func replacingFirst(_ target: String, with replacement: String) -> String {
        var copy = self
        guard let range = copy.firstRange(of: target) else { return self }
        copy.replaceSubrange(range, with: replacement)
        return copy
    }
}
