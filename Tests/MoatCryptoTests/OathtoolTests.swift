import Testing
@testable import MoatCrypto

@Suite("Interoperability with oathtool")
struct OathtoolTests {
    @Test(
        "random secrets and times agree with oathtool (SHA-1/256/512, 6 and 8 digits)",
        .enabled(if: executable("oathtool") != nil, "needs oathtool (apt oathtool)"))
    func agreesWithOathtool() throws {
        let tool = executable("oathtool") ?? ""
        for (i, algorithm) in [OTPAlgorithm.sha1, .sha256, .sha512, .sha1, .sha1].enumerated() {
            let secret = try SecureRandom.bytes([20, 32, 64, 10, 16][i])
            let digits = i % 2 == 0 ? 6 : 8
            let time = Int64.random(in: 0...4_000_000_000)
            let totp = try TOTP(secret: secret, digits: digits, algorithm: algorithm)
            let mode = algorithm == .sha1 ? "--totp" : "--totp=\(algorithm.rawValue.lowercased())"
            let result = try run(tool, [mode, "-b", "-d", "\(digits)", "-N", "@\(time)", Base32.encode(secret)])
            #expect(result.status == 0)
            #expect(result.output == (try totp.code(at: time)) + "\n", "\(algorithm) t=\(time)")
        }
    }
}
