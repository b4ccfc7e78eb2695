import Synchronization

/// Wakes long polls when new events have committed.
///
/// The store calls ``signal()`` after a write transaction that appended
/// events has *returned* (so the events are committed and visible to every
/// later read); never before. A waiter reads ``generation`` before it reads
/// the outbox and then waits "since" that generation, so a commit that lands
/// between its read and its wait is not missed.
///
/// Waiting holds no thread and no database connection: a waiter is a
/// suspended continuation in a list. Every continuation is resumed exactly
/// once — by a signal, the timeout, task cancellation or ``shutDown()`` — and
/// removed from the list when it is (``waiterCount`` goes back to zero).
public final class EventSignal: Sendable {
    /// Why a wait ended.
    public enum Wake: Sendable, Equatable {
        /// Events committed since the observed generation.
        case signalled
        /// The wait's time ran out.
        case timedOut
        /// ``shutDown()`` was called (now or before).
        case shutDown
        /// The waiting task was cancelled.
        case cancelled
    }

    private struct State {
        var generation: UInt64 = 0
        var isShutDown = false
        var nextID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Wake, Never>] = [:]
        /// ``untilWaiting(_:timeout:)`` calls: how many waiters each wants.
        var watchers: [UInt64: (count: Int, continuation: CheckedContinuation<Bool, Never>)] = [:]

        /// Removes and returns the watchers whose count is reached.
        mutating func satisfiedWatchers() -> [CheckedContinuation<Bool, Never>] {
            guard !watchers.isEmpty else { return [] }
            let reached = watchers.filter { $0.value.count <= waiters.count }
            for id in reached.keys { watchers.removeValue(forKey: id) }
            return reached.values.map(\.continuation)
        }
    }

    private let state = Mutex(State())

    /// Creates a signal with no waiters.
    public init() {}

    /// Increases with every ``signal()``; read it before reading the outbox.
    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Whether ``shutDown()`` was called.
    public var isShutDown: Bool { state.withLock { $0.isShutDown } }

    /// Waiters currently suspended (tests: nothing leaks).
    public var waiterCount: Int { state.withLock { $0.waiters.count } }

    /// Suspends until at least `count` waits are suspended on the signal
    /// (true), or `timeout` passes (false). Tests use it to know a long poll
    /// is waiting before they commit, instead of polling ``waiterCount``.
    public func untilWaiting(_ count: Int, timeout: Duration = .seconds(30)) async -> Bool {
        await withTaskGroup(of: Bool?.self) { group in
            group.addTask { await self.watch(count) }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return false
                } catch {
                    return nil
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first ?? false
        }
    }

    private func watch(_ count: Int) async -> Bool {
        let id = state.withLock { state in
            state.nextID &+= 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                // Registered under the lock, as in waitForSignal, so a
                // cancellation is either seen here or finds the watcher.
                let answer = state.withLock { state -> Bool? in
                    if state.waiters.count >= count { return true }
                    if Task.isCancelled { return false }
                    state.watchers[id] = (count, continuation)
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            state.withLock { $0.watchers.removeValue(forKey: id) }?.continuation.resume(returning: false)
        }
    }

    /// New events committed: wakes every waiter.
    public func signal() {
        let woken = state.withLock { state in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for continuation in woken { continuation.resume(returning: .signalled) }
    }

    /// The daemon is stopping: wakes every waiter, and every later wait
    /// returns at once.
    public func shutDown() {
        let woken = state.withLock { state in
            state.isShutDown = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for continuation in woken { continuation.resume(returning: .shutDown) }
    }

    /// Waits until a signal after `observed` (at once if one already came),
    /// shutdown, cancellation or `timeout`, whichever is first.
    public func wait(since observed: UInt64, timeout: Duration) async -> Wake {
        if let immediate = state.withLock({ Self.immediate($0, observed) }) { return immediate }
        guard timeout > .zero else { return .timedOut }
        return await withTaskGroup(of: Wake?.self) { group in
            group.addTask { await self.waitForSignal(since: observed) }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return .timedOut
                } catch {
                    return nil
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            // A sleep that ended by cancellation means the caller was cancelled.
            return first ?? .cancelled
        }
    }

    private static func immediate(_ state: State, _ observed: UInt64) -> Wake? {
        if state.isShutDown { return .shutDown }
        if state.generation != observed { return .signalled }
        return nil
    }

    private func waitForSignal(since observed: UInt64) async -> Wake {
        let id = state.withLock { state in
            state.nextID &+= 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Wake, Never>) in
                // Under the lock, so a cancellation either is seen here or
                // finds the continuation registered (its handler takes the
                // same lock after setting the task's cancelled flag).
                let answer = state.withLock { state -> Wake? in
                    if let immediate = Self.immediate(state, observed) { return immediate }
                    if Task.isCancelled { return .cancelled }
                    state.waiters[id] = continuation
                    return nil
                }
                if let answer {
                    continuation.resume(returning: answer)
                } else {
                    for watcher in state.withLock({ $0.satisfiedWatchers() }) { watcher.resume(returning: true) }
                }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: .cancelled)
        }
    }
}
