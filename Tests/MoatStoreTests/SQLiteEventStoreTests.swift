import Foundation
import MoatCore
import MoatStore
import XCTest

private struct EventTypeEncoder: EventEncoder {
    func encode(_ event: DomainEvent) -> [UInt8] { Array(event.type.utf8) }
}

private let tenant = TenantID(unchecked: "tn_" + String(repeating: "a", count: 26))
private let otherTenant = TenantID(unchecked: "tn_" + String(repeating: "c", count: 26))

private func ms(_ value: Int64) -> Timestamp { Timestamp(milliseconds: value) }

private func openEventStore(_ directory: TemporaryDirectory) async throws -> SQLiteAccountStore {
    try await SQLiteAccountStore.open(path: directory.path(), readerCount: 2, encoder: EventTypeEncoder(), logger: testLogger)
}

/// The event-consumer store methods (migration 3) on SQLite: same behaviour
/// as the memory reference, durable cursors, and the commit signal.
final class SQLiteEventStoreTests: XCTestCase {
    func testConsumersConformToTheMemoryStore() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let memory = try await runConsumerScenario(MemoryAccountStore(encoder: EventTypeEncoder()))
        let store = try await openEventStore(directory)
        let sqlite = try await runConsumerScenario(store)
        await store.close()
        XCTAssertEqual(memory.count, sqlite.count)
        for (reference, observed) in zip(memory, sqlite) {
            XCTAssertEqual(reference.value, observed.value, reference.label)
        }
        XCTAssertGreaterThan(memory.count, 15)
    }

    /// The consumer scenario on PostgreSQL gives the reference's observations.
    func testPostgresConsumersConformToTheMemoryStore() async throws {
        let schema = try await PostgresTestSchema.create()
        let memory = try await runConsumerScenario(MemoryAccountStore(encoder: EventTypeEncoder()))
        let store = try await schema.openStore(encoder: EventTypeEncoder())
        let postgres = try await runConsumerScenario(store)
        await store.close()
        await schema.drop()
        XCTAssertEqual(memory.count, postgres.count)
        for (reference, observed) in zip(memory, postgres) {
            XCTAssertEqual(reference.value, observed.value, reference.label)
        }
    }

    /// On PostgreSQL too: cursors and the newest sequence survive a reopen
    /// and pruning; the signal fires only after a commit that appended; a
    /// long poll is woken by a commit.
    func testPostgresCursorsSignalAndLongPoll() async throws {
        let schema = try await PostgresTestSchema.create()
        let store = try await schema.openStore(encoder: EventTypeEncoder())
        let stream = EventStream(store: store, signal: store.eventSignal)
        for _ in 0..<3 {
            try await store.write { try $0.append(.tenantPolicyUpdated(tenantID: tenant), tenant: tenant, at: ms(1)) }
        }
        _ = try await stream.poll(consumer: "mail")
        _ = try await stream.ack(consumer: "mail", sequence: 2)
        await store.close()

        let reopened = try await schema.openStore(encoder: EventTypeEncoder())
        let again = EventStream(store: reopened, signal: reopened.eventSignal)
        let batch = try await again.poll(consumer: "mail")
        XCTAssertEqual(batch.cursor, 2)
        XCTAssertEqual(batch.events.map(\.sequence), [3])
        _ = try await again.ack(consumer: "mail", sequence: 3)
        let pruned = try await again.prune()
        XCTAssertEqual(pruned, 3)
        let newest = try await reopened.read { try $0.newestEventSequence() }
        XCTAssertEqual(newest, 3, "event_sequence remembers the newest sequence after pruning")

        let signal = reopened.eventSignal
        let start = signal.generation
        let during = try await reopened.write { writer -> UInt64 in
            try writer.append(.tenantPolicyUpdated(tenantID: tenant), tenant: tenant, at: ms(2))
            return signal.generation
        }
        XCTAssertEqual(during, start, "not before the commit")
        XCTAssertGreaterThanOrEqual(signal.generation, start + 1, "after the commit")
        // real time: the commit's NOTIFY comes back through the listener too
        // (or not, if it was not yet LISTENing): let it land.
        try await Task.sleep(for: .milliseconds(300))
        let settled = signal.generation
        do {
            try await reopened.write { writer in
                try writer.append(.tenantPolicyUpdated(tenantID: tenant), tenant: tenant, at: ms(3))
                throw IntentionalError()
            }
            XCTFail("the write should throw")
        } catch {}
        // real time: a NOTIFY that must not arrive is an absence over a window.
        try await Task.sleep(for: .milliseconds(300))
        XCTAssertEqual(signal.generation, settled, "rolled back: no signal, local or notified")
        let newestAfterRollback = try await reopened.read { try $0.newestEventSequence() }
        XCTAssertEqual(newestAfterRollback, 4, "a rolled-back append takes no sequence")

        _ = try await again.ack(consumer: "mail", sequence: 4)
        let poll = Task { try await again.poll(consumer: "mail", waitMilliseconds: 20_000) }
        let waiting = await signal.untilWaiting(1)
        XCTAssertTrue(waiting, "a poll is waiting")
        XCTAssertEqual(signal.waiterCount, 1, "the poll waits")
        try await reopened.write { try $0.append(.tenantPolicyUpdated(tenantID: tenant), tenant: tenant, at: ms(4)) }
        let woken = try await poll.value
        XCTAssertEqual(woken.events.map(\.sequence), [5])
        await reopened.close()
        await schema.drop()
    }

    func testCursorsSurviveAReopenAndTheNewestSequenceSurvivesPruning() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openEventStore(directory)
        let stream = EventStream(store: store, signal: store.eventSignal)
        for _ in 0..<3 {
            try await store.write { try $0.append(.tenantPolicyUpdated(tenantID: tenant), tenant: tenant, at: ms(1)) }
        }
        _ = try await stream.poll(consumer: "mail")
        _ = try await stream.ack(consumer: "mail", sequence: 2)
        await store.close()

        let reopened = try await openEventStore(directory)
        let again = EventStream(store: reopened, signal: reopened.eventSignal)
        let batch = try await again.poll(consumer: "mail")
        XCTAssertEqual(batch.cursor, 2)
        XCTAssertEqual(batch.events.map(\.sequence), [3])
        _ = try await again.ack(consumer: "mail", sequence: 3)
        let pruned = try await again.prune()
        XCTAssertEqual(pruned, 3)
        let newest = try await reopened.read { try $0.newestEventSequence() }
        XCTAssertEqual(newest, 3, "AUTOINCREMENT remembers the newest sequence after pruning")
        try await reopened.write { try $0.append(.tenantPolicyUpdated(tenantID: tenant), tenant: tenant, at: ms(2)) }
        let next = try await again.poll(consumer: "mail")
        XCTAssertEqual(next.events.map(\.sequence), [4])
        await reopened.close()
    }

    func testTheSignalFiresOnlyAfterAWriteThatAppendedEventsCommitted() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openEventStore(directory)
        let signal = store.eventSignal
        let start = signal.generation
        // Inside the transaction the signal has not fired yet.
        let during = try await store.write { writer -> UInt64 in
            try writer.append(.tenantPolicyUpdated(tenantID: tenant), tenant: tenant, at: ms(1))
            return signal.generation
        }
        XCTAssertEqual(during, start, "not before the commit")
        XCTAssertEqual(signal.generation, start + 1, "after the commit")
        // Once signalled, a new read sees the event.
        let seen = try await store.read { try $0.events(after: 0, limit: 10) }
        XCTAssertEqual(seen.count, 1)

        _ = try await store.write { try $0.registerEventConsumer(EventConsumer(name: "c", createdAt: ms(1))) }
        XCTAssertEqual(signal.generation, start + 1, "no event appended: no signal")
        do {
            try await store.write { writer in
                try writer.append(.tenantPolicyUpdated(tenantID: tenant), tenant: tenant, at: ms(2))
                throw IntentionalError()
            }
            XCTFail("the write should throw")
        } catch {}
        XCTAssertEqual(signal.generation, start + 1, "rolled back: no signal")
        let after = try await store.read { try $0.events(after: 0, limit: 10) }
        XCTAssertEqual(after.count, 1)
        await store.close()
    }

    func testALongPollOnSQLiteIsWokenByACommit() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await openEventStore(directory)
        let stream = EventStream(store: store, signal: store.eventSignal)
        let poll = Task { try await stream.poll(consumer: "mail", waitMilliseconds: 20_000) }
        let waiting = await store.eventSignal.untilWaiting(1)
        XCTAssertTrue(waiting, "a poll is waiting")
        XCTAssertEqual(store.eventSignal.waiterCount, 1)
        try await store.write { try $0.append(.tenantPolicyUpdated(tenantID: tenant), tenant: tenant, at: ms(1)) }
        let batch = try await poll.value
        XCTAssertEqual(batch.events.map(\.type), ["tenant.policy_updated"])
        XCTAssertEqual(batch.events.first?.payload, Array("tenant.policy_updated".utf8))
        await store.close()
    }
}

private struct Seen: Equatable {
    enum Value: Equatable {
        case consumer(EventConsumer?), consumers([EventConsumer]), flag(Bool), count(Int), sequence(Int64)
        case sequences([Int64])
    }
    var label: String
    var value: Value
}

private func runConsumerScenario(_ store: any AccountStore) async throws -> [Seen] {
    var seen: [Seen] = []
    func observe(_ label: String, _ value: Seen.Value) { seen.append(Seen(label: label, value: value)) }

    observe("newest empty", .sequence(try await store.read { try $0.newestEventSequence() }))
    observe("none", .consumers(try await store.read { try $0.eventConsumers() }))
    try await store.write { writer in
        for index in 1...6 {
            try writer.append(
                .tenantPolicyUpdated(tenantID: index % 2 == 0 ? tenant : otherTenant),
                tenant: index % 2 == 0 ? tenant : otherTenant, at: ms(Int64(index) * 100))
        }
    }
    observe("newest", .sequence(try await store.read { try $0.newestEventSequence() }))
    observe("register b", .flag(try await store.write { try $0.registerEventConsumer(EventConsumer(name: "b", createdAt: ms(5), lastPolledAt: ms(5))) }))
    observe("register a", .flag(try await store.write { try $0.registerEventConsumer(EventConsumer(name: "a", createdAt: ms(6))) }))
    observe("register b again", .flag(try await store.write { try $0.registerEventConsumer(EventConsumer(name: "b", cursor: 4, createdAt: ms(7))) }))
    observe("b", .consumer(try await store.read { try $0.eventConsumer(name: "b") }))
    observe("missing", .consumer(try await store.read { try $0.eventConsumer(name: "zz") }))
    try await store.write { try $0.recordEventConsumerPoll(name: "a", at: ms(50)) }
    try await store.write { try $0.recordEventConsumerPoll(name: "b", at: ms(3)) }
    try await store.write { try $0.recordEventConsumerPoll(name: "zz", at: ms(3)) }
    observe("polled", .consumers(try await store.read { try $0.eventConsumers() }))
    observe("advance a", .consumer(try await store.write { try $0.advanceEventConsumer(name: "a", to: 4, at: ms(60)) }))
    observe("advance a back", .consumer(try await store.write { try $0.advanceEventConsumer(name: "a", to: 2, at: ms(61)) }))
    observe("advance b", .consumer(try await store.write { try $0.advanceEventConsumer(name: "b", to: 6, at: ms(62)) }))
    observe("advance missing", .consumer(try await store.write { try $0.advanceEventConsumer(name: "zz", to: 1, at: ms(63)) }))
    observe("delete old acked", .count(try await store.write { try $0.deleteEvents(through: 4, createdBefore: ms(300), limit: 10) }))
    observe("after delete", .sequences(try await store.read { try $0.events(after: 0, limit: 10) }.map(\.sequence)))
    observe("delete limited", .count(try await store.write { try $0.deleteEvents(through: 6, createdBefore: ms(10_000), limit: 2) }))
    observe("after limited", .sequences(try await store.read { try $0.events(after: 0, limit: 10) }.map(\.sequence)))
    observe("delete limit 0", .count(try await store.write { try $0.deleteEvents(through: 6, createdBefore: ms(10_000), limit: 0) }))
    observe("delete consumer", .flag(try await store.write { try $0.deleteEventConsumer(name: "a") }))
    observe("delete consumer again", .flag(try await store.write { try $0.deleteEventConsumer(name: "a") }))
    observe("left", .consumers(try await store.read { try $0.eventConsumers() }))
    observe("newest after delete", .sequence(try await store.read { try $0.newestEventSequence() }))
    return seen
}
