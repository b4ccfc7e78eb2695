/// A named reader of the event stream and how far it has read.
///
/// Consumers are daemon-wide, not tenant data: one consumer (the mail
/// sender, the billing worker) reads every tenant's events, so the row has no
/// `tenant_id` (like the `meta` table).
public struct EventConsumer: Sendable, Equatable {
    /// 1 to 64 characters of `[a-z0-9._-]`.
    public var name: String
    /// The highest acknowledged sequence; 0 before the first Ack.
    public var cursor: Int64
    public var createdAt: Timestamp
    /// The last Poll, recorded coarsely (see `EventStreamConfiguration`).
    public var lastPolledAt: Timestamp?
    public var lastAckedAt: Timestamp?

    public init(
        name: String, cursor: Int64 = 0, createdAt: Timestamp, lastPolledAt: Timestamp? = nil,
        lastAckedAt: Timestamp? = nil
    ) {
        self.name = name
        self.cursor = cursor
        self.createdAt = createdAt
        self.lastPolledAt = lastPolledAt
        self.lastAckedAt = lastAckedAt
    }
}

/// Queries on the event stream's consumers, inside a transaction. (The
/// events themselves are read with `AccountStoreReader.events(after:limit:)`.)
public protocol EventStoreReader {
    /// The newest sequence ever assigned (0 if none), even if that event has
    /// since been pruned.
    func newestEventSequence() throws -> Int64
    func eventConsumer(name: String) throws -> EventConsumer?
    /// Every consumer, ordered by name.
    func eventConsumers() throws -> [EventConsumer]
}

/// Changes to the event stream's consumers and retention, inside a write
/// transaction.
public protocol EventStoreWriter: EventStoreReader {
    /// Inserts the consumer unless one with its name exists; returns whether
    /// it inserted (an existing consumer is left unchanged).
    func registerEventConsumer(_ consumer: EventConsumer) throws -> Bool
    /// Records a Poll at `at` (never moves the time backwards).
    func recordEventConsumerPoll(name: String, at: Timestamp) throws
    /// Raises the cursor to `sequence` (never lowers it) and records the Ack
    /// at `at`; returns the consumer as it is now, nil if there is none.
    func advanceEventConsumer(name: String, to sequence: Int64, at: Timestamp) throws -> EventConsumer?
    /// Deletes the consumer; false if there was none.
    func deleteEventConsumer(name: String) throws -> Bool
    /// Deletes up to `limit` of the oldest events with a sequence at most
    /// `through` that were created before `createdBefore`; returns how many.
    func deleteEvents(through sequence: Int64, createdBefore: Timestamp, limit: Int) throws -> Int
}
