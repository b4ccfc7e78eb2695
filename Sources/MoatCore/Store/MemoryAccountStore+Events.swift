extension MemoryTransaction {
    func newestEventSequence() -> Int64 { state.nextSequence - 1 }

    func eventConsumer(name: String) -> EventConsumer? { state.eventConsumers[name] }

    func eventConsumers() -> [EventConsumer] { state.eventConsumers.values.sorted { $0.name < $1.name } }

    func registerEventConsumer(_ consumer: EventConsumer) -> Bool {
        guard state.eventConsumers[consumer.name] == nil else { return false }
        state.eventConsumers[consumer.name] = consumer
        return true
    }

    func recordEventConsumerPoll(name: String, at: Timestamp) {
        guard var consumer = state.eventConsumers[name] else { return }
        consumer.lastPolledAt = max(consumer.lastPolledAt ?? at, at)
        state.eventConsumers[name] = consumer
    }

    func advanceEventConsumer(name: String, to sequence: Int64, at: Timestamp) -> EventConsumer? {
        guard var consumer = state.eventConsumers[name] else { return nil }
        consumer.cursor = max(consumer.cursor, sequence)
        consumer.lastAckedAt = at
        state.eventConsumers[name] = consumer
        return consumer
    }

    func deleteEventConsumer(name: String) -> Bool {
        state.eventConsumers.removeValue(forKey: name) != nil
    }

    func deleteEvents(through sequence: Int64, createdBefore: Timestamp, limit: Int) -> Int {
        // The outbox is in sequence order; take the oldest that qualify.
        var deleted = 0
        state.events.removeAll { event in
            guard deleted < limit, event.sequence <= sequence, event.createdAt < createdBefore else { return false }
            deleted += 1
            return true
        }
        return deleted
    }
}
