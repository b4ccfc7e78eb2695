import XCTest

@testable import MoatCore

/// The event stream as consumers read it: order, cursors, Ack, filters,
/// consumer registration and deletion, retention.
final class EventStreamTests: XCTestCase {
    static let day: Int64 = 86400

    struct Env {
        let world: World
        let stream: EventStream

        init(configuration: EventStreamConfiguration = EventStreamConfiguration()) throws {
            world = try World()
            stream = EventStream(
                store: world.store, signal: world.store.eventSignal, clock: world.clock, configuration: configuration)
        }

        /// Appends `count` events of `type` for `tenant` directly, one write each.
        func append(_ count: Int, tenant: TenantID, event: DomainEvent) async throws {
            for _ in 0..<count {
                try await world.store.write { [now = world.clock.now()] in try $0.append(event, tenant: tenant, at: now) }
            }
        }
    }

    static let tenantA = TenantID("tn_" + String(repeating: "a", count: 26))!
    static let userA = UserID("us_" + String(repeating: "b", count: 26))!

    func testFirstPollRegistersTheConsumerAndReadsFromTheOldestEvent() async throws {
        let env = try Env()
        let (tenant, owner) = try await env.world.makeTenant()
        let expected = env.world.store.allEvents
        XCTAssertTrue(expected.map(\.type).contains("tenant.created"))

        let batch = try await env.stream.poll(consumer: "mail-sender")
        XCTAssertEqual(batch.events, expected)
        XCTAssertEqual(batch.cursor, 0)
        XCTAssertEqual(batch.lastSequenceScanned, expected.last?.sequence)
        XCTAssertTrue(batch.events.allSatisfy { $0.tenantID == tenant.id })
        XCTAssertTrue(batch.events.contains { $0.subject == owner.id.rawValue })

        let (consumers, newest) = try await env.stream.consumers()
        XCTAssertEqual(consumers.map(\.consumer.name), ["mail-sender"])
        XCTAssertEqual(consumers.first?.consumer.cursor, 0)
        XCTAssertEqual(consumers.first?.consumer.lastPolledAt, env.world.clock.now())
        XCTAssertNil(consumers.first?.consumer.lastAckedAt)
        XCTAssertEqual(consumers.first?.lag, newest)
        XCTAssertEqual(newest, expected.last?.sequence)
    }

    func testPollIsInSequenceOrderAfterTheCursorAndAckMovesItForwardOnly() async throws {
        let env = try Env()
        try await env.append(5, tenant: Self.tenantA, event: .tenantPolicyUpdated(tenantID: Self.tenantA))

        let first = try await env.stream.poll(consumer: "billing", maxEvents: 2)
        XCTAssertEqual(first.events.map(\.sequence), [1, 2])
        // Not acked: delivered again (at-least-once).
        let again = try await env.stream.poll(consumer: "billing", maxEvents: 2)
        XCTAssertEqual(again.events.map(\.sequence), [1, 2])

        let cursor = try await env.stream.ack(consumer: "billing", sequence: 2)
        XCTAssertEqual(cursor, 2)
        let second = try await env.stream.poll(consumer: "billing", maxEvents: 2)
        XCTAssertEqual(second.events.map(\.sequence), [3, 4])
        XCTAssertEqual(second.cursor, 2)

        // Backwards is a no-op, not an error (a retried Ack is harmless).
        let unchanged = try await env.stream.ack(consumer: "billing", sequence: 1)
        XCTAssertEqual(unchanged, 2)
        let third = try await env.stream.poll(consumer: "billing", maxEvents: 10)
        XCTAssertEqual(third.events.map(\.sequence), [3, 4, 5])

        await assertDomainError(.invalidArgument, "SEQUENCE_INVALID") {
            try await env.stream.ack(consumer: "billing", sequence: 6)
        }
        await assertDomainError(.invalidArgument, "SEQUENCE_INVALID") {
            try await env.stream.ack(consumer: "billing", sequence: -1)
        }
        await assertDomainError(.notFound, "CONSUMER_NOT_FOUND") {
            try await env.stream.ack(consumer: "never-polled", sequence: 1)
        }
        let last = try await env.stream.ack(consumer: "billing", sequence: 5)
        XCTAssertEqual(last, 5)
        let (consumers, _) = try await env.stream.consumers()
        XCTAssertEqual(consumers.first?.consumer.cursor, 5)
        XCTAssertEqual(consumers.first?.lag, 0)
        XCTAssertNotNil(consumers.first?.consumer.lastAckedAt)
        let empty = try await env.stream.poll(consumer: "billing")
        XCTAssertEqual(empty.events, [])
        XCTAssertEqual(empty.lastSequenceScanned, 5)
        // Each consumer has its own cursor.
        let other = try await env.stream.poll(consumer: "audit")
        XCTAssertEqual(other.events.count, 5)
    }

    func testFiltersSkipEventsAndReportHowFarTheyScanned() async throws {
        let env = try Env()
        let (acme, acmeOwner) = try await env.world.makeTenant()
        let (globex, _) = try await env.world.makeTenant(slug: "globex", ownerEmail: "owner@globex.test")
        let start = env.world.store.allEvents.last!.sequence
        let changed = DomainEvent.passwordChanged(
            userID: acmeOwner.id, email: Fixture.ownerEmail, ip: "", userAgent: "", revokedSessions: 0)
        try await env.append(1, tenant: acme.id, event: changed)
        try await env.append(1, tenant: globex.id, event: changed)
        try await env.append(1, tenant: acme.id, event: .tenantPolicyUpdated(tenantID: acme.id))

        let all = env.world.store.allEvents
        let byPrefix = try await env.stream.poll(consumer: "mail", typePrefix: "password.")
        XCTAssertEqual(byPrefix.events.map(\.sequence), [start + 1, start + 2])
        XCTAssertEqual(byPrefix.lastSequenceScanned, all.last!.sequence, "scanned to the end")

        let byTenant = try await env.stream.poll(consumer: "acme-only", tenant: "acme")
        XCTAssertTrue(byTenant.events.allSatisfy { $0.tenantID == acme.id })
        XCTAssertEqual(byTenant.events.count, all.filter { $0.tenantID == acme.id }.count)
        let byID = try await env.stream.poll(consumer: "acme-only", tenant: acme.id.rawValue)
        XCTAssertEqual(byID.events, byTenant.events)

        let both = try await env.stream.poll(consumer: "globex-mail", typePrefix: "password.", tenant: "globex")
        XCTAssertEqual(both.events.map(\.sequence), [start + 2])
        XCTAssertEqual(both.lastSequenceScanned, all.last!.sequence)
        // Acking what was scanned skips the filtered-out events for good.
        _ = try await env.stream.ack(consumer: "globex-mail", sequence: both.lastSequenceScanned)
        let after = try await env.stream.poll(consumer: "globex-mail", typePrefix: "password.", tenant: "globex")
        XCTAssertEqual(after.events, [])
        XCTAssertEqual(after.lastSequenceScanned, all.last!.sequence)

        // With a full batch, scanning stops at the last event returned.
        let limited = try await env.stream.poll(consumer: "mail", maxEvents: 1, typePrefix: "password.")
        XCTAssertEqual(limited.events.map(\.sequence), [start + 1])
        XCTAssertEqual(limited.lastSequenceScanned, start + 1)

        await assertDomainError(.notFound, "TENANT_NOT_FOUND") {
            try await env.stream.poll(consumer: "mail", tenant: "initech")
        }
    }

    func testFilteredScanIsBoundedPerRead() async throws {
        var configuration = EventStreamConfiguration()
        configuration.scanLimit = 3
        let env = try Env(configuration: configuration)
        try await env.append(5, tenant: Self.tenantA, event: .tenantPolicyUpdated(tenantID: Self.tenantA))
        let batch = try await env.stream.poll(consumer: "mail", typePrefix: "password.")
        XCTAssertEqual(batch.events, [])
        XCTAssertEqual(batch.lastSequenceScanned, 3, "stopped after scanLimit events; the consumer acks and goes on")
        _ = try await env.stream.ack(consumer: "mail", sequence: batch.lastSequenceScanned)
        let next = try await env.stream.poll(consumer: "mail", typePrefix: "password.")
        XCTAssertEqual(next.lastSequenceScanned, 5)
    }

    func testBadInputIsRefused() async throws {
        let env = try Env()
        for name in ["", String(repeating: "a", count: 65), "Mail", "mail sender", "mäil", "mail/x", "mail\n"] {
            await assertDomainError(.invalidArgument, "CONSUMER_NAME_INVALID") {
                try await env.stream.poll(consumer: name)
            }
            await assertDomainError(.invalidArgument, "CONSUMER_NAME_INVALID") {
                try await env.stream.ack(consumer: name, sequence: 0)
            }
        }
        _ = try await env.stream.poll(consumer: String(repeating: "a", count: 64))
        _ = try await env.stream.poll(consumer: "a.b_c-9")
        for size in [-1, 1001] {
            await assertDomainError(.invalidArgument, "MAX_EVENTS_INVALID") {
                try await env.stream.poll(consumer: "mail", maxEvents: size)
            }
        }
        await assertDomainError(.invalidArgument, "TYPE_PREFIX_INVALID") {
            try await env.stream.poll(consumer: "mail", typePrefix: String(repeating: "p", count: 129))
        }
        await assertDomainError(.notFound, "CONSUMER_NOT_FOUND") { try await env.stream.deleteConsumer("mail") }
        let (consumers, _) = try await env.stream.consumers()
        XCTAssertEqual(consumers.map(\.consumer.name), ["a.b_c-9", String(repeating: "a", count: 64)])
    }

    func testRetentionDeletesOnlyOldEventsEveryConsumerAcknowledged() async throws {
        let env = try Env()
        let clock = env.world.clock
        let policy = DomainEvent.tenantPolicyUpdated(tenantID: Self.tenantA)
        try await env.append(4, tenant: Self.tenantA, event: policy)  // 1...4 on day 0
        clock.advance(seconds: 8 * Self.day)
        try await env.append(2, tenant: Self.tenantA, event: policy)  // 5...6 on day 8

        // No consumer: nothing goes, however old.
        let none = try await env.stream.prune()
        XCTAssertEqual(none, 0)
        XCTAssertEqual(env.world.store.allEvents.count, 6)

        _ = try await env.stream.poll(consumer: "fast")
        _ = try await env.stream.poll(consumer: "slow")
        _ = try await env.stream.ack(consumer: "fast", sequence: 6)
        _ = try await env.stream.ack(consumer: "slow", sequence: 2)
        let first = try await env.stream.prune()
        XCTAssertEqual(first, 2, "only what both acknowledged")
        XCTAssertEqual(env.world.store.allEvents.map(\.sequence), [3, 4, 5, 6])

        // Deleting the slow consumer unblocks retention, but only for old events.
        try await env.stream.deleteConsumer("slow")
        let second = try await env.stream.prune()
        XCTAssertEqual(second, 2)
        XCTAssertEqual(env.world.store.allEvents.map(\.sequence), [5, 6], "younger than 7 days: kept")

        clock.advance(seconds: 7 * Self.day)
        let exactly = try await env.stream.prune()
        XCTAssertEqual(exactly, 0, "exactly the retention age: kept")
        clock.advance(seconds: 1)
        let third = try await env.stream.prune()
        XCTAssertEqual(third, 2)
        XCTAssertEqual(env.world.store.allEvents, [])
        // The newest sequence survives pruning: acking it is still valid,
        // and new events continue the sequence.
        let cursor = try await env.stream.ack(consumer: "fast", sequence: 6)
        XCTAssertEqual(cursor, 6)
        try await env.append(1, tenant: Self.tenantA, event: policy)
        let batch = try await env.stream.poll(consumer: "fast")
        XCTAssertEqual(batch.events.map(\.sequence), [7])
        // A consumer registered after pruning starts at the oldest retained.
        let late = try await env.stream.poll(consumer: "late")
        XCTAssertEqual(late.events.map(\.sequence), [7])
    }

    func testRetentionWorksInBatches() async throws {
        var configuration = EventStreamConfiguration()
        configuration.pruneBatch = 2
        let env = try Env(configuration: configuration)
        try await env.append(5, tenant: Self.tenantA, event: .tenantPolicyUpdated(tenantID: Self.tenantA))
        _ = try await env.stream.poll(consumer: "c")
        _ = try await env.stream.ack(consumer: "c", sequence: 5)
        env.world.clock.advance(seconds: 8 * Self.day)
        let deleted = try await env.stream.prune()
        XCTAssertEqual(deleted, 5)
        XCTAssertEqual(env.world.store.allEvents, [])
    }

    func testPollTimeIsRecordedCoarsely() async throws {
        let env = try Env()
        let t0 = env.world.clock.now()
        _ = try await env.stream.poll(consumer: "c")
        env.world.clock.advance(seconds: 30)
        _ = try await env.stream.poll(consumer: "c")
        var consumers = try await env.stream.consumers().consumers
        XCTAssertEqual(consumers.first?.consumer.lastPolledAt, t0, "within the granularity: no write")
        env.world.clock.advance(seconds: 31)
        _ = try await env.stream.poll(consumer: "c")
        consumers = try await env.stream.consumers().consumers
        XCTAssertEqual(consumers.first?.consumer.lastPolledAt, env.world.clock.now())
        XCTAssertEqual(consumers.first?.consumer.createdAt, t0)
    }

    func testWaitIsCappedByConfigurationAndDeadline() throws {
        var configuration = EventStreamConfiguration()
        configuration.maxPollWaitMilliseconds = 30_000
        configuration.deadlineMarginMilliseconds = 250
        let stream = EventStream(store: MemoryAccountStore(encoder: JSONEventEncoder()), signal: EventSignal(),
            configuration: configuration)
        XCTAssertEqual(stream.waitDuration(requested: 5000, budget: nil), .milliseconds(5000))
        XCTAssertEqual(stream.waitDuration(requested: 90_000, budget: nil), .milliseconds(30_000))
        XCTAssertEqual(stream.waitDuration(requested: 20_000, budget: .seconds(10)), .milliseconds(9750))
        XCTAssertEqual(stream.waitDuration(requested: 20_000, budget: .milliseconds(100)), .zero)
        XCTAssertEqual(stream.waitDuration(requested: -5, budget: nil), .zero)
    }
}
