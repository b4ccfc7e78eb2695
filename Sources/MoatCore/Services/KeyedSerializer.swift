import Synchronization

/// Runs async work one at a time per key, in arrival order.
///
/// Sign-in attempts for one account pass through here, so a burst of
/// parallel guesses is checked one by one against the lockout state: the
/// threshold caps the guesses an attacker gets, however many connections
/// they use.
final class KeyedSerializer<Key: Hashable & Sendable>: Sendable {
    private struct Entry {
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex([Key: Entry]())

    init() {}

    func run<T: Sendable>(_ key: Key, _ body: () async throws -> T) async throws -> T {
        await acquire(key)
        defer { release(key) }
        return try await body()
    }

    private func acquire(_ key: Key) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let proceed = state.withLock { entries -> Bool in
                if entries[key] == nil {
                    entries[key] = Entry()
                    return true
                }
                entries[key]?.waiters.append(continuation)
                return false
            }
            if proceed { continuation.resume() }
        }
    }

    private func release(_ key: Key) {
        let next = state.withLock { entries -> CheckedContinuation<Void, Never>? in
            guard var entry = entries[key] else { return nil }
            guard !entry.waiters.isEmpty else {
                entries.removeValue(forKey: key)
                return nil
            }
            let next = entry.waiters.removeFirst()
            entries[key] = entry
            return next
        }
        next?.resume()
    }
}
