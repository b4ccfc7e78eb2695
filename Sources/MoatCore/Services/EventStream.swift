import Foundation

/// Event-stream settings.
public struct EventStreamConfiguration: Sendable, Equatable {
    /// Acknowledged events are kept at least this long. Default 7 days.
    public var retentionSeconds: Int64 = 7 * 86400
    /// The longest a Poll waits, whatever it asks. Default 30 s.
    public var maxPollWaitMilliseconds: Int64 = 30_000
    /// A Poll waits at most until this long before its call's deadline, so
    /// its answer arrives in time. Default 250 ms.
    public var deadlineMarginMilliseconds: Int64 = 250
    /// A consumer's last-poll time is written when it is older than this
    /// (a long-polling consumer would otherwise cost a write per Poll).
    /// Default 60 s.
    public var pollRecordGranularityMilliseconds: Int64 = 60_000
    /// With filters, at most this many events are examined per read of the
    /// stream. Default 10000.
    public var scanLimit = 10_000
    /// Events deleted per retention transaction. Default 1000.
    public var pruneBatch = 1000

    public init() {}
}

/// What a Poll returns.
public struct EventBatch: Sendable, Equatable {
    /// In sequence order; only those that passed the filters.
    public var events: [EventRecord]
    /// The highest sequence examined, filtered out or not; at least the
    /// consumer's cursor. Acking it skips what the filters left out.
    public var lastSequenceScanned: Int64
    /// The consumer's cursor when the Poll read the stream.
    public var cursor: Int64
}

/// The durable event stream as other services read it: named consumers with
/// cursors over the outbox, long polls woken by commits, retention.
///
/// Delivery is at-least-once. Poll never moves a cursor; Ack does, durably.
/// After a restart a consumer reads everything after its last committed Ack.
public final class EventStream: Sendable {
    let store: any AccountStore
    let signal: EventSignal
    let clock: any WallClock
    let configuration: EventStreamConfiguration

    /// Creates the stream over `store`; `signal` must be the one the store
    /// fires after each write that appended events.
    public init(
        store: any AccountStore, signal: EventSignal, clock: any WallClock = SystemWallClock(),
        configuration: EventStreamConfiguration = EventStreamConfiguration()
    ) {
        self.store = store
        self.signal = signal
        self.clock = clock
        self.configuration = configuration
    }

    // MARK: Poll

    /// Events after the consumer's cursor, at most `maxEvents` (0 means 100,
    /// at most 1000). If none pass the filters, waits up to `waitMilliseconds`
    /// (capped by the configuration and by `budget`, the time left before the
    /// call's deadline, minus a margin) for new events to commit. The first
    /// Poll of an unknown name registers it with cursor 0 (from the oldest
    /// retained event). Returns early and empty when the stream shuts down or
    /// the task is cancelled.
    public func poll(
        consumer name: String, maxEvents: Int = 0, waitMilliseconds: Int64 = 0, typePrefix: String = "",
        tenant tenantReference: String = "", budget: Duration? = nil
    ) async throws -> EventBatch {
        try Self.validate(consumerName: name)
        let limit = try Self.batchSize(maxEvents)
        guard typePrefix.utf8.count <= 128 else {
            throw DomainError.invalid(.typePrefixInvalid, "type_prefix is at most 128 bytes")
        }
        let tenant = try await resolveTenant(tenantReference)
        let wait = waitDuration(requested: waitMilliseconds, budget: budget)
        let started = ContinuousClock.now

        let consumer = try await register(name)
        var position = consumer.cursor
        while true {
            let observed = signal.generation
            let scan = try await store.read { [configuration, position] reader in
                try Self.scan(
                    reader, after: position, limit: limit, typePrefix: typePrefix, tenant: tenant,
                    scanLimit: configuration.scanLimit)
            }
            position = max(position, scan.lastScanned)
            if !scan.events.isEmpty { return EventBatch(events: scan.events, lastSequenceScanned: position, cursor: consumer.cursor) }
            let left = wait - (ContinuousClock.now - started)
            guard left > .zero else { break }
            // Stopped at the scan limit with more committed events behind:
            // keep scanning, no need to wait.
            if !scan.reachedEnd { continue }
            // Filtered-out events were scanned: read again only after new ones.
            if await signal.wait(since: observed, timeout: left) != .signalled { break }
        }
        return EventBatch(events: [], lastSequenceScanned: position, cursor: consumer.cursor)
    }

    /// Registers the consumer if new, records the poll coarsely, and returns
    /// it. Reads first, so a steady long-poller costs no write.
    private func register(_ name: String) async throws -> EventConsumer {
        let now = clock.now()
        let granularity = configuration.pollRecordGranularityMilliseconds
        if let existing = try await store.read({ try $0.eventConsumer(name: name) }),
            let polled = existing.lastPolledAt, now.milliseconds - polled.milliseconds < granularity
        {
            return existing
        }
        return try await store.write { writer in
            if try !writer.registerEventConsumer(EventConsumer(name: name, createdAt: now, lastPolledAt: now)) {
                try writer.recordEventConsumerPoll(name: name, at: now)
            }
            guard let consumer = try writer.eventConsumer(name: name) else { throw DomainError.consumerNotFound }
            return consumer
        }
    }

    struct Scan: Sendable {
        var events: [EventRecord] = []
        var lastScanned: Int64 = 0
        /// The scan read to the newest committed event (rather than
        /// stopping at `scanLimit` or `limit`).
        var reachedEnd = false
    }

    /// Reads after `after` in sequence order, keeping what passes the
    /// filters, until `limit` passed, the stream ends or `scanLimit` were
    /// examined.
    static func scan(
        _ reader: any AccountStoreReader, after: Int64, limit: Int, typePrefix: String, tenant: TenantID?,
        scanLimit: Int
    ) throws -> Scan {
        var scan = Scan(lastScanned: after)
        let filtered = !typePrefix.isEmpty || tenant != nil
        var examined = 0
        while true {
            let chunk = filtered ? min(1000, scanLimit - examined) : limit
            guard chunk > 0 else { return scan }
            let records = try reader.events(after: scan.lastScanned, limit: chunk)
            for record in records {
                guard scan.events.count < limit else { return scan }
                scan.lastScanned = record.sequence
                examined += 1
                if record.type.hasPrefix(typePrefix), tenant.map({ $0 == record.tenantID }) ?? true {
                    scan.events.append(record)
                }
            }
            if records.count < chunk {
                scan.reachedEnd = true
                return scan
            }
            if scan.events.count >= limit || !filtered { return scan }
        }
    }

    func waitDuration(requested: Int64, budget: Duration?) -> Duration {
        var wait = Duration.milliseconds(min(max(0, requested), configuration.maxPollWaitMilliseconds))
        if let budget { wait = min(wait, budget - .milliseconds(configuration.deadlineMarginMilliseconds)) }
        return max(.zero, wait)
    }

    /// The tenant filter: an id is taken as is (a purged tenant's events stay
    /// readable), a slug must name a tenant.
    private func resolveTenant(_ reference: String) async throws -> TenantID? {
        let reference = reference.trimmingCharacters(in: .whitespaces).lowercased()
        if reference.isEmpty { return nil }
        if let id = TenantID(reference) { return id }
        guard reference.utf8.count <= 128 else { throw DomainError.tenantNotFound }
        guard let tenant = try await store.read({ try $0.tenant(slug: reference) }) else {
            throw DomainError.tenantNotFound
        }
        return tenant.id
    }

    // MARK: Ack

    /// Moves the consumer's cursor forward to `sequence`, durably; an Ack at
    /// or below the cursor changes nothing. Returns the cursor.
    public func ack(consumer name: String, sequence: Int64) async throws -> Int64 {
        try Self.validate(consumerName: name)
        guard sequence >= 0 else { throw DomainError.sequenceInvalid }
        let now = clock.now()
        return try await store.write { writer in
            guard let consumer = try writer.eventConsumer(name: name) else { throw DomainError.consumerNotFound }
            let newest = try writer.newestEventSequence()
            guard sequence <= consumer.cursor || sequence <= newest else {
                throw DomainError.sequenceInvalid
            }
            guard let advanced = try writer.advanceEventConsumer(name: name, to: sequence, at: now) else {
                throw DomainError.consumerNotFound
            }
            return advanced.cursor
        }
    }

    // MARK: Consumers

    /// A consumer with how far behind it is.
    public struct ConsumerStatus: Sendable, Equatable {
        public var consumer: EventConsumer
        /// Sequence numbers between the cursor and the newest event.
        public var lag: Int64
    }

    /// Every consumer, ordered by name, and the newest sequence.
    public func consumers() async throws -> (consumers: [ConsumerStatus], newestSequence: Int64) {
        try await store.read { reader in
            let newest = try reader.newestEventSequence()
            let consumers = try reader.eventConsumers().map {
                ConsumerStatus(consumer: $0, lag: max(0, newest - $0.cursor))
            }
            return (consumers, newest)
        }
    }

    /// Forgets a consumer (it no longer holds back retention). A later Poll
    /// with its name registers it again from the oldest retained event.
    public func deleteConsumer(_ name: String) async throws {
        try Self.validate(consumerName: name)
        guard try await store.write({ try $0.deleteEventConsumer(name: name) }) else {
            throw DomainError.consumerNotFound
        }
    }

    // MARK: Retention

    /// Deletes events every registered consumer has acknowledged and that
    /// are older than the retention age; returns how many.
    ///
    /// With no consumer registered nothing is deleted: the outbox exists so
    /// that nothing is lost, and a consumer that registers later starts from
    /// the oldest retained event. Deleting unread events because nobody has
    /// asked yet would lose exactly the events a new deployment's first
    /// consumer needs. (An abandoned consumer holds retention back the same
    /// way; delete it.)
    public func prune() async throws -> Int {
        let cutoff = clock.now().adding(seconds: -configuration.retentionSeconds)
        let batch = max(1, configuration.pruneBatch)
        var total = 0
        while true {
            let deleted = try await store.write { writer -> Int in
                let consumers = try writer.eventConsumers()
                guard let acked = consumers.map(\.cursor).min() else { return 0 }
                return try writer.deleteEvents(through: acked, createdBefore: cutoff, limit: batch)
            }
            total += deleted
            if deleted < batch { return total }
        }
    }

    /// Wakes every waiting Poll (they answer empty) and makes later ones
    /// answer at once: the daemon is draining.
    public func shutDown() { signal.shutDown() }

    // MARK: Validation

    static func validate(consumerName name: String) throws(DomainError) {
        let allowed = name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard (1...64).contains(name.utf8.count), allowed else {
            throw .invalid(.consumerNameInvalid, "a consumer name is 1 to 64 characters of a-z, 0-9, '.', '_', '-'")
        }
    }

    static func batchSize(_ requested: Int) throws(DomainError) -> Int {
        if requested == 0 { return 100 }
        guard (1...1000).contains(requested) else { throw .invalid(.maxEventsInvalid, "max_events must be 1 to 1000") }
        return requested
    }
}

extension DomainError {
    /// Ack or DeleteConsumer named a consumer that is not registered.
    static let consumerNotFound = DomainError(.notFound, .consumerNotFound, "no such event consumer")
    /// Ack beyond the newest event, or below 0.
    static let sequenceInvalid = DomainError(
        .invalidArgument, .sequenceInvalid, "the sequence is beyond the newest event or negative")
}
