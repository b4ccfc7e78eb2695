import ArgumentParser
import Foundation
import Logging
import MoatStore

/// Group commit on the real disk: single-row inserts, each its own
/// `Database.write`, with 1 writer (one commit and fsync per insert) and with
/// many concurrent writers (one fsync per batch). No daemon: MoatStore alone,
/// so the number is the disk's and the writer's, not the socket's.
struct StoreCommit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store-commit",
        abstract: "Measure MoatStore's group commit: inserts/s with 1 and with N concurrent writers.",
        discussion: """
            Opens a fresh database in --directory (a temporary directory by default; put it on the disk moatd \
            will use), runs each writer count for --seconds, checks every insert was committed exactly once, \
            and prints inserts/s, commits and writes per commit. Exits 1 if a check fails.
            """)

    @Option(help: "Seconds per writer count.") var seconds: Double = 3
    @Option(name: .customLong("writers"), help: "Concurrent writers (repeatable).") var writerCounts: [Int] = [1, 64]
    @Option(help: "SQLite durability: full (fsync every commit, moatd's default) or normal.") var synchronous = "full"
    @Option(help: "Directory for the database (default: a new temporary directory, removed after).")
    var directory: String?

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard writerCounts.allSatisfy({ (1...4096).contains($0) }) else {
            throw ValidationError("--writers must be 1 to 4096")
        }
        guard SynchronousMode(rawValue: synchronous.uppercased()) != nil else {
            throw ValidationError("--synchronous must be full or normal")
        }
    }

    func run() async throws {
        let mode = SynchronousMode(rawValue: synchronous.uppercased()) ?? .full
        let base = directory ?? NSTemporaryDirectory() + "moat-store-commit-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: base) } }
        var failed = false
        for writers in writerCounts {
            let path = base + "/store-commit-\(writers).db"
            defer {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            }
            failed = try await measure(writers: writers, path: path, mode: mode) || failed
        }
        if failed { throw ExitCode(1) }
    }

    /// Runs one writer count; returns true if a check failed.
    private func measure(writers: Int, path: String, mode: SynchronousMode) async throws -> Bool {
        var logger = Logger(label: "moat-bench.store")
        logger.logLevel = .warning
        let database = try await Database.open(
            configuration: StoreConfiguration(path: path, synchronous: mode),
            migrations: [
                Migration(
                    version: 1, name: "create_items",
                    sql: "CREATE TABLE items (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, name TEXT NOT NULL)")
            ],
            logger: logger)
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .milliseconds(Int(seconds * 1000))
        let inserted = try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var count = 0
                    while clock.now < deadline {
                        let name = "row-\(count)"
                        try await database.write { transaction in
                            _ = try transaction.execute("INSERT INTO items (writer, name) VALUES (?, ?)", [writer, name])
                        }
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = clock.now - start
        let metrics = database.metrics
        let rows = try await database.read { connection in
            try connection.queryFirst("SELECT count(*) FROM items") { try $0.int(at: 0) } ?? -1
        }
        await database.close()
        let wall = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(
            String(
                format: "store-commit: %4d writer(s), synchronous=%@: %7d inserts in %.2f s = %8.0f inserts/s, "
                    + "%6d commits (%.1f writes/commit, largest batch %d), mean latency %.2f ms",
                writers, mode.rawValue, inserted, wall, Double(inserted) / wall, metrics.commits,
                metrics.writesPerCommit, metrics.largestBatch, wall * 1000 * Double(writers) / Double(max(inserted, 1))))
        var failed = false
        if rows != inserted || metrics.writesCommitted != inserted {
            print("store-commit: FAILED: \(inserted) inserts returned, \(rows) rows, \(metrics.writesCommitted) committed")
            failed = true
        }
        if writers > 1, inserted > writers, metrics.commits >= inserted {
            print("store-commit: FAILED: \(writers) writers but no write shared a commit")
            failed = true
        }
        return failed
    }
}
