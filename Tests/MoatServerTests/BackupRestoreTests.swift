import Foundation
import Logging
import MoatClient
import MoatCrypto
import MoatStore
import Synchronization
import XCTest

@testable import MoatServer

/// `Operations.Backup` under a write load and `moatd --restore`'s
/// `Restore.restore`: every write acknowledged before the backup began is in
/// the restored daemon, the file is 0600 and passes `integrity_check`, and
/// the refusals.
final class BackupRestoreTests: XCTestCase {
    private let password = "correct horse battery"
    private var root = ""

    override func setUp() {
        root = NSTemporaryDirectory() + "moat-backup-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    private func configuration(_ directory: String) -> MoatConfiguration {
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory
        configuration.hashing.parameters = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
        return configuration
    }

    private func start(_ directory: String) async throws -> (MoatDaemon, MoatClient, Task<Void, Error>) {
        let daemon = try await MoatDaemon.open(configuration: configuration(directory), logger: Logger(label: "test"))
        try await daemon.server.start()
        let task = Task { try await daemon.run() }
        return (daemon, MoatClient(socketPath: daemon.configuration.socketPath), task)
    }

    private func stop(_ running: (MoatDaemon, MoatClient, Task<Void, Error>)) async throws {
        await running.1.close()
        await running.0.shutdown()
        try await running.2.value
    }

    private func emails(_ daemon: MoatDaemon) async throws -> Set<String> {
        Set(try await XCTUnwrap(daemon.sqliteStore).database.read { connection in
            try connection.query("SELECT email FROM users") { try $0.string("email") }
        })
    }

    func testBackupUnderWriteLoadRestoresEveryAcknowledgedWrite() async throws {
        let first = root + "/first"
        let running = try await start(first)
        let (daemon, client, _) = running
        _ = try await client.tenants.create(
            .with {
                $0.slug = "acme"
                $0.name = "Acme"
                $0.ownerEmail = "owner@acme.test"
                $0.ownerPassword = password
            })

        // Four writers create users until told to stop; each records the
        // emails whose Create returned OK.
        let load = WriteLoad()
        let ownerPassword = password
        let writers = (0..<4).map { writer in
            Task {
                var index = 0
                while !load.stop.load(ordering: .relaxed) {
                    let email = "w\(writer)-\(index)@acme.test"
                    index += 1
                    _ = try await client.users.create(
                        .with {
                            $0.email = email
                            $0.password = ownerPassword
                        }, options: CallOptions(tenant: "acme"))
                    load.record(email)
                }
            }
        }
        var acks = load.acks.makeAsyncIterator()
        while load.count < 40 { _ = await acks.next() }
        let beforeBackup = Set(load.acknowledged.withLock { $0 })
        let path = root + "/moat-backup.db"
        let backup = try await client.operations.backup(.with { $0.path = path })
        while load.count < beforeBackup.count + 40 { _ = await acks.next() }
        load.stop.store(true, ordering: .relaxed)
        for writer in writers { try await writer.value }

        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual((attributes[.size] as? NSNumber)?.uint64Value, backup.sizeBytes)
        XCTAssertEqual(backup.path, path)
        XCTAssertGreaterThan(backup.lastEventSequence, Int64(beforeBackup.count), "tenant.created + a user.created each")
        let inspection = try SQLiteAccountStore.inspectBackup(at: path)
        XCTAssertTrue(inspection.integrityOK, "\(inspection.problems)")
        XCTAssertEqual(inspection.lastEventSequence, backup.lastEventSequence)
        let everything = try await emails(daemon)
        XCTAssertTrue(beforeBackup.isSubset(of: everything))

        // Refusals while it runs.
        await expectRPCError(.alreadyExists, "BACKUP_EXISTS") {
            _ = try await client.operations.backup(.with { $0.path = path })
        }
        await expectRPCError(.invalidArgument, "BACKUP_PATH_INVALID") {
            _ = try await client.operations.backup(.with { $0.path = "relative.db" })
        }
        await expectRPCError(.internal, "BACKUP_FAILED") {
            _ = try await client.operations.backup(.with { $0.path = self.root + "/no/such/dir/b.db" })
        }
        XCTAssertThrowsError(try Restore.restore(backup: path, dataDirectory: first)) { error in
            XCTAssertTrue("\(error)".contains("is not empty"), "\(error)")
        }
        try await self.stop(running)

        // Restore into a new directory holding only the same key.
        let second = root + "/second"
        try FileManager.default.createDirectory(atPath: second, withIntermediateDirectories: false)
        try FileManager.default.copyItem(atPath: first + "/master.key", toPath: second + "/master.key")
        let restored = try Restore.restore(backup: path, dataDirectory: second)
        XCTAssertTrue(restored.keyPresent)
        XCTAssertEqual(restored.lastEventSequence, backup.lastEventSequence)
        let again = try await start(second)
        let inRestored = try await emails(again.0)
        XCTAssertTrue(beforeBackup.isSubset(of: inRestored), "missing: \(beforeBackup.subtracting(inRestored).sorted().prefix(5))")
        XCTAssertTrue(inRestored.isSubset(of: everything), "nothing that was never written")
        let newest = try await XCTUnwrap(again.0.sqliteStore).database.read { connection in
            try connection.queryFirst("SELECT MAX(sequence) FROM events") { try $0.int64(at: 0) }
        }
        XCTAssertEqual(newest, backup.lastEventSequence)
        // The restored daemon serves: the owner signs in.
        let session = try await again.1.users.signIn(
            .with {
                $0.email = "owner@acme.test"
                $0.password = password
            }, options: CallOptions(tenant: "acme"))
        XCTAssertFalse(session.sessionToken.isEmpty)
        try await self.stop(again)
        XCTAssertTrue(try SQLiteAccountStore.inspectBackup(at: second + "/moat.db").integrityOK)
    }

    /// What the writers share: the acknowledged emails, a stream that
    /// ticks once per acknowledgement (the test waits on it), and the stop flag.
    private final class WriteLoad: Sendable {
        let acknowledged = Mutex<[String]>([])
        let stop = Atomic<Bool>(false)
        let (acks, ack) = AsyncStream<Void>.makeStream()

        func record(_ email: String) {
            acknowledged.withLock { $0.append(email) }
            ack.yield()
        }

        var count: Int { acknowledged.withLock { $0.count } }
    }

    func testRestoreRefusesAnotherKeyAndNonDatabases() async throws {
        let first = root + "/first"
        let running = try await start(first)
        let path = root + "/b.db"
        _ = try await running.1.operations.backup(.with { $0.path = path })
        try await stop(running)

        let wrongKey = root + "/wrong-key"
        try FileManager.default.createDirectory(atPath: wrongKey, withIntermediateDirectories: false)
        try Data(try SecureRandom.bytes(32)).write(to: URL(fileURLWithPath: wrongKey + "/master.key"))
        chmod(wrongKey + "/master.key", 0o600)
        XCTAssertThrowsError(try Restore.restore(backup: path, dataDirectory: wrongKey)) { error in
            XCTAssertTrue("\(error)".contains("is not the key of this backup"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: wrongKey + "/moat.db"))

        let garbage = root + "/garbage.db"
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: garbage))
        XCTAssertThrowsError(try Restore.restore(backup: garbage, dataDirectory: root + "/third")) { error in
            XCTAssertTrue("\(error)".contains("is not a Moat backup"), "\(error)")
        }
        XCTAssertThrowsError(try Restore.restore(backup: root + "/absent.db", dataDirectory: root + "/fourth"))

        // Without the key the restore works and says the key is missing.
        let result = try Restore.restore(backup: path, dataDirectory: root + "/fifth")
        XCTAssertFalse(result.keyPresent)
        XCTAssertNotNil(result.keyFingerprint)
    }
}
