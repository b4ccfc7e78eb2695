import Foundation
import MoatStore
import XCTest

/// Throughput of single-row inserts, each its own `write` call, with
/// `synchronous=FULL` on a file in the temporary directory: 1 writer (one
/// commit and fsync per insert) against 64 concurrent writers (group commit).
///
/// Runs briefly (0.5 s per case) in every test run; set
/// `MOAT_STORE_BENCH_SECONDS` for longer, steadier numbers:
/// `MOAT_STORE_BENCH_SECONDS=3 swift test --filter MoatStoreTests.BenchmarkTests`.
final class BenchmarkTests: XCTestCase {
    private static let seconds = Double(ProcessInfo.processInfo.environment["MOAT_STORE_BENCH_SECONDS"] ?? "") ?? 0.5

    /// 1 writer: one commit per insert.
    func testSingleRowInsertsOneWriter() async throws {
        try await run(writers: 1)
    }

    /// 64 concurrent writers: group commit.
    func testSingleRowInsertsSixtyFourWriters() async throws {
        try await run(writers: 64)
    }

    private func run(writers: Int) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = try await openTestDatabase(directory, synchronous: .full)
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(Self.seconds * 1000))
        let start = clock.now
        let inserted = try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var count = 0
                    while clock.now < deadline {
                        let name = "row-\(count)"
                        try await database.write { tx in
                            try tx.execute("INSERT INTO items (tenant_id, name) VALUES (?, ?)", [writer, name])
                        }
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let metrics = database.metrics
        let rows = try await count("items", in: database)
        XCTAssertEqual(rows, inserted)
        XCTAssertEqual(metrics.writesCommitted, inserted)
        if writers > 1 { XCTAssertLessThan(metrics.commits, inserted) }
        print(
            String(
                format: "benchmark: %2d writer(s), synchronous=FULL: %6d inserts in %.2f s = %8.0f inserts/s, "
                    + "%5d commits (%.1f writes/commit, largest batch %d), mean latency %.2f ms",
                writers, inserted, seconds, Double(inserted) / seconds, metrics.commits, metrics.writesPerCommit,
                metrics.largestBatch, seconds * 1000 * Double(writers) / Double(max(inserted, 1))))
        await database.close()
    }
}
