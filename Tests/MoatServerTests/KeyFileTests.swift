import Foundation
import Logging
import MoatCrypto
import XCTest

@testable import MoatServer

final class KeyFileTests: XCTestCase {
    private var directory = ""

    override func setUp() {
        directory = NSTemporaryDirectory() + "moat-key-" + UUID().uuidString.prefix(8)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private var configuration: MoatConfiguration {
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory
        configuration.hashing.parameters = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
        return configuration
    }

    private var keyPath: String { directory + "/master.key" }

    private func startAndStop() async throws {
        let daemon = try await MoatDaemon.open(configuration: configuration, logger: Logger(label: "test"))
        try await daemon.server.start()
        let running = Task { try await daemon.run() }
        await daemon.shutdown()
        try await running.value
    }

    private func expectRefusal(containing text: String, file: StaticString = #filePath, line: UInt = #line) async {
        do {
            _ = try await MoatDaemon.open(configuration: configuration, logger: Logger(label: "test"))
            XCTFail("started", file: file, line: line)
        } catch {
            XCTAssertTrue("\(error)".contains(text), "\(error)", file: file, line: line)
        }
    }

    func testFirstStartCreatesA32ByteKeyReadableOnlyByTheOwner() async throws {
        try await startAndStop()
        let attributes = try FileManager.default.attributesOfItem(atPath: keyPath)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual((attributes[.size] as? NSNumber)?.intValue, 32)
        let first = try Data(contentsOf: URL(fileURLWithPath: keyPath))
        // A restart keeps the same key.
        try await startAndStop()
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: keyPath)), first)
    }

    func testRefusesAKeyReadableByOthers() async throws {
        try await startAndStop()
        chmod(keyPath, 0o644)
        await expectRefusal(containing: "readable or writable by others")
    }

    func testRefusesToStartWithoutTheKeyOnceTheDatabaseHasOne() async throws {
        try await startAndStop()
        try FileManager.default.removeItem(atPath: keyPath)
        await expectRefusal(containing: "is missing but the database was created with a master key")
        XCTAssertFalse(FileManager.default.fileExists(atPath: keyPath), "no new key was made in its place")
    }

    func testRefusesAnotherKey() async throws {
        try await startAndStop()
        let other = try SecureRandom.bytes(32)
        try Data(other).write(to: URL(fileURLWithPath: keyPath))
        chmod(keyPath, 0o600)
        await expectRefusal(containing: "is not the key this database was created with")
    }

    func testRefusesATruncatedKey() async throws {
        try await startAndStop()
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: keyPath))
        chmod(keyPath, 0o600)
        await expectRefusal(containing: "exactly 32 bytes")
    }
}
