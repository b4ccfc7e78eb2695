import MoatCore
import Synchronization

/// Set by a write transaction's `append(_:tenant:at:)`, read by
/// `SQLiteAccountStore.write` once the transaction has committed.
final class EventAppendMarker: Sendable {
    private let flag = Atomic<Bool>(false)

    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

// The event consumers (migration 3): daemon-wide rows, so no tenant_id here.
extension SQLiteAccountReading {
    func newestEventSequence() throws -> Int64 {
        // AUTOINCREMENT keeps the highest sequence ever used, even after
        // retention deleted that event.
        try db.queryFirst("SELECT seq FROM sqlite_sequence WHERE name = 'events'", []) { try $0.int64("seq") } ?? 0
    }

    func eventConsumer(name: String) throws -> EventConsumer? {
        try db.queryFirst(
            "SELECT \(ConsumerRows.columns) FROM event_consumers WHERE name = ?", [name], ConsumerRows.decode)
    }

    func eventConsumers() throws -> [EventConsumer] {
        try db.query("SELECT \(ConsumerRows.columns) FROM event_consumers ORDER BY name", [], ConsumerRows.decode)
    }
}

extension SQLiteAccountWriting {
    func registerEventConsumer(_ consumer: EventConsumer) throws -> Bool {
        try db.execute(
            """
            INSERT INTO event_consumers (\(ConsumerRows.columns)) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (name) DO NOTHING
            """,
            [
                consumer.name, consumer.cursor, consumer.createdAt.milliseconds, consumer.lastPolledAt?.milliseconds,
                consumer.lastAckedAt?.milliseconds,
            ]) > 0
    }

    func recordEventConsumerPoll(name: String, at: Timestamp) throws {
        try db.execute(
            """
            UPDATE event_consumers SET last_polled_at = max(coalesce(last_polled_at, ?1), ?1) WHERE name = ?2
            """,
            [at.milliseconds, name])
    }

    func advanceEventConsumer(name: String, to sequence: Int64, at: Timestamp) throws -> EventConsumer? {
        try db.queryFirst(
            """
            UPDATE event_consumers SET cursor = max(cursor, ?), last_acked_at = ? WHERE name = ?
            RETURNING \(ConsumerRows.columns)
            """,
            [sequence, at.milliseconds, name], ConsumerRows.decode)
    }

    func deleteEventConsumer(name: String) throws -> Bool {
        try db.execute("DELETE FROM event_consumers WHERE name = ?", [name]) > 0
    }

    func deleteEvents(through sequence: Int64, createdBefore: Timestamp, limit: Int) throws -> Int {
        try db.execute(
            """
            DELETE FROM events WHERE sequence IN (
                SELECT sequence FROM events WHERE sequence <= ? AND created_at < ? ORDER BY sequence LIMIT ?)
            """,
            [sequence, createdBefore.milliseconds, Self.clamp(limit)])
    }
}

private enum ConsumerRows {
    static let columns = "name, cursor, created_at, last_polled_at, last_acked_at"

    static func decode(_ row: some SQLRow) throws -> EventConsumer {
        EventConsumer(
            name: try row.string("name"), cursor: try row.int64("cursor"),
            createdAt: Timestamp(milliseconds: try row.int64("created_at")),
            lastPolledAt: try row.optionalInt64("last_polled_at").map { Timestamp(milliseconds: $0) },
            lastAckedAt: try row.optionalInt64("last_acked_at").map { Timestamp(milliseconds: $0) })
    }
}
