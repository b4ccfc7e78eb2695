import MoatCore
import XCTest

@testable import MoatStore

/// Events are not read here.
private struct NoPayloadEncoder: EventEncoder {
    func encode(_ event: DomainEvent) -> [UInt8] { Array(event.type.utf8) }
}

/// The per-address failure counter in SQLite behaves like the memory one,
/// keeps its counts across a reopen and deletes ended windows.
final class SQLiteAddressFailureCounterTests: XCTestCase {
    private func open(_ directory: TemporaryDirectory) async throws -> SQLiteAccountStore {
        try await SQLiteAccountStore.open(path: directory.path(), readerCount: 1, encoder: NoPayloadEncoder(), logger: testLogger)
    }

    func testWindowsCountReopenAndEnd() async throws {
        let directory = try TemporaryDirectory()
        let start = Timestamp(seconds: 10_000)
        var store = try await open(directory)
        var counter = SQLiteAddressFailureCounter(store: store)
        let missing = try await counter.window(key: "192.0.2.1/32", at: start, windowSeconds: 900)
        XCTAssertNil(missing)
        for expected in 1...3 {
            let window = try await counter.recordFailure(key: "192.0.2.1/32", at: start.adding(seconds: Int64(expected)), windowSeconds: 900)
            XCTAssertEqual(window, AddressFailureWindow(startedAt: start.adding(seconds: 1), failures: expected))
        }
        try await counter.recordFailure(key: "other", at: start, windowSeconds: 900)
        await store.close()

        store = try await open(directory)
        counter = SQLiteAddressFailureCounter(store: store)
        let kept = try await counter.window(key: "192.0.2.1/32", at: start.adding(seconds: 500), windowSeconds: 900)
        XCTAssertEqual(kept, AddressFailureWindow(startedAt: start.adding(seconds: 1), failures: 3))
        // The window ends 900 s after its first failure; the next failure opens a new one.
        let ended = try await counter.window(key: "192.0.2.1/32", at: start.adding(seconds: 901), windowSeconds: 900)
        XCTAssertNil(ended)
        let fresh = try await counter.recordFailure(key: "192.0.2.1/32", at: start.adding(seconds: 901), windowSeconds: 900)
        XCTAssertEqual(fresh, AddressFailureWindow(startedAt: start.adding(seconds: 901), failures: 1))
        // "other" ended at start + 900 and was deleted by that write.
        let rows = try await store.database.read { connection in
            try connection.query("SELECT address FROM address_failures ORDER BY address") { try $0.string("address") }
        }
        XCTAssertEqual(rows, ["192.0.2.1/32"])
        await store.close()
    }
}
