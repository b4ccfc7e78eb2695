import Foundation
import MoatCrypto
import XCTest

@testable import MoatServer

/// `hashing.allow_weak` and the key/reason of configuration errors that
/// `moatd --check-config` prints.
final class GuardRailsTests: XCTestCase {
    func testDefaultsMeetOWASP() throws {
        XCTAssertTrue(HashingGuardRails.meetsOWASPMinimum(Argon2Parameters()))
        XCTAssertNoThrow(try ConfigurationLoader.load(file: nil))
    }

    func testWeakHashingIsRefusedWithTheKey() {
        XCTAssertThrowsError(
            try ConfigurationLoader.load(file: nil, overrides: ["hashing.memory_kib=8", "hashing.iterations=1"])
        ) { error in
            let error = error as? ConfigurationError
            XCTAssertEqual(error?.key, "hashing.memory_kib")
            XCTAssertTrue(error?.reason.contains("below OWASP's minimum") ?? false, "\(String(describing: error))")
            XCTAssertTrue(error?.reason.contains("hashing.allow_weak") ?? false)
        }
        // Enough memory but a single pass is also below the table.
        XCTAssertThrowsError(try ConfigurationLoader.load(file: nil, overrides: ["hashing.iterations=1"])) { error in
            XCTAssertEqual((error as? ConfigurationError)?.key, "hashing.iterations")
        }
    }

    func testOWASPTableEquivalentsAreAccepted() throws {
        for (memory, iterations) in [(47104, 1), (12288, 3), (9216, 4), (7168, 5)] {
            let configuration = try ConfigurationLoader.load(
                file: nil, overrides: ["hashing.memory_kib=\(memory)", "hashing.iterations=\(iterations)"])
            XCTAssertEqual(configuration.hashing.parameters.memoryKiB, memory)
        }
        XCTAssertThrowsError(
            try ConfigurationLoader.load(file: nil, overrides: ["hashing.memory_kib=9215", "hashing.iterations=4"]))
    }

    func testAllowWeakAcceptsBenchmarkParameters() throws {
        let configuration = try ConfigurationLoader.load(
            file: nil, overrides: ["hashing.memory_kib=8", "hashing.iterations=1", "hashing.allow_weak=true"])
        XCTAssertTrue(configuration.allowWeakHashing)
        XCTAssertEqual(configuration.hashing.parameters.memoryKiB, 8)
        XCTAssertThrowsError(try ConfigurationLoader.load(file: nil, overrides: ["hashing.allow_weak=1"])) { error in
            XCTAssertEqual((error as? ConfigurationError)?.key, "hashing.allow_weak")
        }
    }

    func testErrorsNameTheirKey() {
        XCTAssertThrowsError(try ConfigurationLoader.load(file: nil, overrides: ["limits.max_connections=0"])) { error in
            XCTAssertEqual((error as? ConfigurationError)?.key, "limits.max_connections")
            XCTAssertEqual((error as? ConfigurationError)?.reason, "0 is outside 1...1000000")
        }
        XCTAssertThrowsError(try ConfigurationLoader.load(file: nil, overrides: ["limits.no_such=1"])) { error in
            XCTAssertEqual((error as? ConfigurationError)?.key, "limits.no_such")
            XCTAssertEqual((error as? ConfigurationError)?.reason, "unknown setting")
        }
        XCTAssertThrowsError(try ConfigurationLoader.load(file: "/nonexistent/moatd.toml")) { error in
            XCTAssertNil((error as? ConfigurationError)?.key)
        }
    }
}
