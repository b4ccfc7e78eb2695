import Foundation
import Logging
import MoatClient
import MoatCore
import MoatCrypto
import MoatStore
import XCTest

@testable import MoatServer

/// Master-key rotation while moatd serves: 2FA sign-ins keep working, every
/// secret ends up under the new key, the old key file is deleted, a restart
/// resumes an unfinished rotation, and the old key alone is refused.
final class KeyRotationTests: XCTestCase {
    private static let password = "correct horse battery"
    private var directory = ""

    override func setUp() {
        directory = NSTemporaryDirectory() + "moat-rotate-" + UUID().uuidString.prefix(8)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func configuration(batchSize: Int) -> MoatConfiguration {
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory
        configuration.hashing.parameters = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
        configuration.keys.rotationBatchSize = batchSize
        return configuration
    }

    /// A running daemon on `directory` and a client.
    private final class Running: @unchecked Sendable {
        let daemon: MoatDaemon
        let client: MoatClient
        let task: Task<Void, Error>

        init(_ configuration: MoatConfiguration) async throws {
            daemon = try await MoatDaemon.open(configuration: configuration, logger: Logger(label: "test"))
            try await daemon.server.start()
            let daemon = self.daemon
            task = Task { try await daemon.run() }
            client = MoatClient(socketPath: daemon.configuration.socketPath)
        }

        func stop() async throws {
            await client.close()
            await daemon.shutdown()
            try await task.value
        }
    }

    private static func code(_ secret: [UInt8], offsetSteps: Int64 = 0) throws -> String {
        try TOTP(secret: secret).code(at: Int64(Date().timeIntervalSince1970) + 30 * offsetSteps)
    }

    /// Creates a tenant with `count` members, each enrolled in 2FA; returns
    /// their emails and secrets.
    /// A user with 2FA on.
    private struct Enrolled: Sendable {
        let email: String
        let secret: [UInt8]
    }

    private func enrolUsers(_ moat: Running, count: Int) async throws -> [Enrolled] {
        _ = try await moat.client.tenants.create(
            .with {
                $0.slug = "acme"
                $0.name = "Acme"
                $0.ownerEmail = "owner@acme.test"
                $0.ownerPassword = Self.password
            })
        let options = CallOptions(tenant: "acme")
        var users: [Enrolled] = []
        for index in 0..<count {
            let email = "user\(index)@acme.test"
            _ = try await moat.client.users.create(
                .with {
                    $0.email = email
                    $0.password = Self.password
                }, options: options)
            let session = try await moat.client.users.signIn(
                .with {
                    $0.email = email
                    $0.password = Self.password
                }, options: options)
            let authorized = CallOptions(tenant: "acme", authorization: session.sessionToken)
            let enrollment = try await moat.client.twoFactor.beginEnrollment(
                .with { $0.password = Self.password }, options: authorized)
            let secret = try XCTUnwrap(Base32.decode(enrollment.secret.replacingOccurrences(of: " ", with: "")))
            let code = try Self.code(secret)
            _ = try await moat.client.twoFactor.confirmEnrollment(.with { $0.code = code }, options: authorized)
            users.append(Enrolled(email: email, secret: secret))
        }
        return users
    }

    /// Password then code (of the next step: the current one was spent by
    /// the enrolment); returns the new session's token.
    private static func signInWithCode(_ moat: Running, _ email: String, _ secret: [UInt8]) async throws -> String {
        let options = CallOptions(tenant: "acme")
        let first = try await moat.client.users.signIn(
            .with {
                $0.email = email
                $0.password = Self.password
            }, options: options)
        XCTAssertTrue(first.secondFactorRequired)
        let code = try Self.code(secret, offsetSteps: 1)
        let done = try await moat.client.users.completeSignIn(
            .with {
                $0.challenge = first.challenge
                $0.code = code
            }, options: options)
        return done.sessionToken
    }

    private func sealedRows(_ daemon: MoatDaemon) async throws -> [(tenant: String, user: String, key: String, box: [UInt8])] {
        try await XCTUnwrap(daemon.sqliteStore).database.read { connection in
            try connection.query("SELECT tenant_id, user_id, key_id, secret FROM two_factor ORDER BY user_id") { row in
                (try row.string("tenant_id"), try row.string("user_id"), try row.string("key_id"), try row.blob("secret"))
            }
        }
    }

    private func waitUntilRetired(_ moat: Running) async throws -> KeyStatus {
        let rotation = moat.daemon.keyRotation
        let retired = XCTestExpectation(description: "the old key is retired")
        let waiting = Task {
            await rotation.untilRetired()
            retired.fulfill()
        }
        guard await XCTWaiter.fulfillment(of: [retired], timeout: 30) == .completed else {
            waiting.cancel()
            throw XCTSkip("the rotation did not finish within 30 s")
        }
        let status = try await rotation.status()
        XCTAssertNil(status.retiringKeyID)
        return status
    }

    private static func signInAll(_ moat: Running, _ users: [Enrolled]) async throws -> [String] {
        var tokens: [String] = []
        for user in users { tokens.append(try await signInWithCode(moat, user.email, user.secret)) }
        return tokens
    }

    private static func rotateResult(_ moat: Running) async -> Result<Moat_V1_RotateKeyResponse, any Error> {
        do {
            return .success(try await moat.client.operations.rotateKey(Moat_V1_RotateKeyRequest()))
        } catch {
            return .failure(error)
        }
    }

    func testRotationWhileTwoFactorSignInsRun() async throws {
        let moat = try await Running(configuration(batchSize: 3))
        let users = try await enrolUsers(moat, count: 24)
        let oldKey = try Data(contentsOf: URL(fileURLWithPath: directory + "/master.key"))
        let oldID = KeyFile.fingerprint(of: [UInt8](oldKey))
        let before = try await moat.daemon.keyRotation.status()
        XCTAssertEqual(before.currentKeyID, oldID)
        XCTAssertEqual(before.sealedUnderCurrent, 24)

        // Sign-ins with a code run while the rotation re-seals, three a batch.
        async let signIns = Self.signInAll(moat, users)
        // Two at once: one rotates, the other is told one is in progress.
        async let one = Self.rotateResult(moat)
        async let two = Self.rotateResult(moat)
        let results = await [one, two]
        let successes = results.compactMap { try? $0.get() }
        XCTAssertEqual(successes.count, 1, "\(results)")
        for case .failure(let error) in results {
            XCTAssertEqual((error as? RPCError)?.reason, "ROTATION_IN_PROGRESS", "\(error)")
        }
        let started = try XCTUnwrap(successes.first)
        XCTAssertNotEqual(started.status.currentKeyID, oldID)
        XCTAssertEqual(started.status.retiringKeyID, oldID)
        let tokens = try await signIns
        XCTAssertEqual(tokens.count, 24)
        for token in tokens {
            let valid = try await moat.client.sessions.validate(.with { $0.token = token }, options: CallOptions(tenant: "acme"))
            XCTAssertTrue(valid.secondFactorSatisfied)
        }

        let after = try await waitUntilRetired(moat)
        let newID = after.currentKeyID
        XCTAssertEqual(newID, started.status.currentKeyID)
        XCTAssertEqual(after.sealedUnderCurrent, 24)
        XCTAssertEqual(after.retiredKeyIDs, [oldID])
        let counts = try await XCTUnwrap(moat.daemon.sqliteStore).sealedSecretCounts()
        XCTAssertEqual(counts, [newID: 24], "no row names the old key")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/master.\(oldID).key"), "old key deleted")
        let keyAttributes = try FileManager.default.attributesOfItem(atPath: directory + "/master.key")
        XCTAssertEqual((keyAttributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)

        // Every secret opens under the new key alone and is the enrolled one.
        let newKey = try KeyFile.load(directory: directory, mayCreate: false)
        XCTAssertEqual(newKey.fingerprint, newID)
        let keyring = SecretKeyring(current: (id: newID, key: newKey.key))
        let rows = try await sealedRows(moat.daemon)
        XCTAssertEqual(rows.count, 24)
        let secrets = Set(users.map(\.secret))
        for row in rows {
            let opened = try keyring.openTOTPSecret(
                SealedSecret(keyID: row.key, box: row.box), tenant: TenantID(unchecked: row.tenant),
                user: UserID(unchecked: row.user))
            XCTAssertTrue(secrets.contains(opened))
        }
        try await moat.stop()

        // The old key alone is refused, clearly.
        let current = try Data(contentsOf: URL(fileURLWithPath: directory + "/master.key"))
        try oldKey.write(to: URL(fileURLWithPath: directory + "/master.key"))
        chmod(directory + "/master.key", 0o600)
        do {
            _ = try await MoatDaemon.open(configuration: configuration(batchSize: 3), logger: Logger(label: "test"))
            XCTFail("started with the retired key")
        } catch {
            XCTAssertTrue("\(error)".contains("is a retired key"), "\(error)")
            XCTAssertTrue("\(error)".contains(newID), "\(error)")
        }
        // And the current one still starts.
        try current.write(to: URL(fileURLWithPath: directory + "/master.key"))
        let again = try await Running(configuration(batchSize: 3))
        let status = try await again.daemon.keyRotation.status()
        XCTAssertEqual(status.currentKeyID, newID)
        try await again.stop()
    }

    func testRestartResumesAnUnfinishedRotation() async throws {
        var moat = try await Running(configuration(batchSize: 1))
        _ = try await enrolUsers(moat, count: 20)
        let oldID = try await moat.daemon.keyRotation.status().currentKeyID
        // Stop right after the switch: one secret a batch leaves work over.
        let started = try await moat.daemon.keyRotation.rotate()
        try await moat.stop()
        let store = try await SQLiteAccountStore.open(path: directory + "/moat.db", encoder: ProtobufEventEncoder())
        let counts = try await store.sealedSecretCounts()
        await store.close()
        XCTAssertGreaterThan(counts[oldID] ?? 0, 0, "the shutdown interrupted the re-sealing: \(counts)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/master.\(oldID).key"), "old key kept")

        moat = try await Running(configuration(batchSize: 1))
        let resumed = try await moat.daemon.keyRotation.status()
        XCTAssertEqual(resumed.currentKeyID, started.currentKeyID)
        let finished = try await waitUntilRetired(moat)
        XCTAssertEqual(finished.sealedUnderCurrent, 20)
        let resealed = try await XCTUnwrap(moat.daemon.sqliteStore).sealedSecretCounts()
        XCTAssertEqual(resealed, [started.currentKeyID: 20])
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/master.\(oldID).key"))
        try await moat.stop()
    }

    func testRestartFinishesTheKeyFileSwitch() async throws {
        // A crash after the database named the new key, before master.key
        // was replaced: the staged key is moved into place at start.
        var moat = try await Running(configuration(batchSize: 100))
        _ = try await enrolUsers(moat, count: 2)
        let oldID = try await moat.daemon.keyRotation.status().currentKeyID
        try await moat.stop()
        let staged = try KeyFile.create(directory + "/" + MasterKeys.stagedFileName)
        XCTAssertEqual(link(directory + "/master.key", directory + "/master.\(oldID).key"), 0)
        let store = try await SQLiteAccountStore.open(path: directory + "/moat.db", encoder: ProtobufEventEncoder())
        _ = try await store.updateMeta([MasterKeys.currentKey: staged.fingerprint, MasterKeys.rotationFrom: oldID])
        await store.close()

        moat = try await Running(configuration(batchSize: 100))
        let finished = try await waitUntilRetired(moat)
        XCTAssertEqual(finished.currentKeyID, staged.fingerprint)
        XCTAssertEqual(try KeyFile.load(directory: directory, mayCreate: false).fingerprint, staged.fingerprint)
        let resealed = try await XCTUnwrap(moat.daemon.sqliteStore).sealedSecretCounts()
        XCTAssertEqual(resealed, [staged.fingerprint: 2])
        try await moat.stop()
    }
}
