import Dispatch
import Synchronization

/// A closable FIFO of jobs that dedicated threads block on.
///
/// State lives behind a `Mutex`; a semaphore wakes sleeping threads. A push
/// signals only when a thread is registered as sleeping, so signals and waits
/// pair up and no wake-up is lost (a thread checks the queue under the lock
/// before it registers).
final class WorkQueue<Job: Sendable>: Sendable {
    private struct State {
        var jobs: [Job] = []
        var head = 0
        var isClosed = false
        var sleepers = 0
        var nextWatcher: UInt64 = 0
        /// ``untilQueued(_:timeout:)`` callers and the count each waits for.
        var watchers: [UInt64: (count: Int, continuation: CheckedContinuation<Bool, Never>)] = [:]

        var count: Int { jobs.count - head }

        /// Removes and returns the watchers whose count is reached.
        mutating func reachedWatchers() -> [CheckedContinuation<Bool, Never>] {
            guard !watchers.isEmpty else { return [] }
            let reached = watchers.filter { $0.value.count <= count }
            for id in reached.keys { watchers.removeValue(forKey: id) }
            return reached.values.map(\.continuation)
        }
    }

    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)

    /// Appends a job. Returns false (and drops the job) if the queue is closed.
    func push(_ job: Job) -> Bool {
        let (accepted, wake, reached) = state.withLock { state -> (Bool, Bool, [CheckedContinuation<Bool, Never>]) in
            guard !state.isClosed else { return (false, false, []) }
            state.jobs.append(job)
            let reached = state.reachedWatchers()
            guard state.sleepers > 0 else { return (true, false, reached) }
            state.sleepers -= 1
            return (true, true, reached)
        }
        if wake { wakeUp.signal() }
        for watcher in reached { watcher.resume(returning: true) }
        return accepted
    }

    /// Takes up to `limit` jobs, blocking the calling thread while the queue is
    /// empty. Returns nil once the queue is closed and drained.
    func take(max limit: Int) -> [Job]? {
        while true {
            let taken = state.withLock { state -> [Job]?? in
                if state.count > 0 {
                    let end = state.head + min(max(1, limit), state.count)
                    let batch = Array(state.jobs[state.head..<end])
                    state.head = end
                    if state.head == state.jobs.count {
                        state.jobs.removeAll(keepingCapacity: true)
                        state.head = 0
                    } else if state.head >= 1024 {
                        state.jobs.removeFirst(state.head)
                        state.head = 0
                    }
                    return .some(batch)
                }
                if state.isClosed { return .some(nil) }
                state.sleepers += 1
                return .none
            }
            if let taken { return taken }
            wakeUp.wait()
        }
    }

    /// Refuses further pushes and wakes every sleeping thread; queued jobs are
    /// still handed out.
    func close() {
        let (sleepers, watchers) = state.withLock { state -> (Int, [CheckedContinuation<Bool, Never>]) in
            state.isClosed = true
            defer {
                state.sleepers = 0
                state.watchers = [:]
            }
            return (state.sleepers, state.watchers.values.map(\.continuation))
        }
        for _ in 0..<sleepers { wakeUp.signal() }
        for watcher in watchers { watcher.resume(returning: false) }
    }

    /// The number of queued jobs.
    var count: Int { state.withLock { $0.count } }

    /// Suspends until at least `count` jobs are queued (true), or the queue
    /// closes or `timeout` passes (false): tests know a job is queued
    /// without polling ``count``.
    func untilQueued(_ count: Int, timeout: Duration) async -> Bool {
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
            state.nextWatcher &+= 1
            return state.nextWatcher
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                // Registered under the lock, so a cancellation is either seen
                // here or finds the watcher (its handler takes the same lock).
                let answer = state.withLock { state -> Bool? in
                    if state.count >= count { return true }
                    if Task.isCancelled || state.isClosed { return false }
                    state.watchers[id] = (count, continuation)
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            state.withLock { $0.watchers.removeValue(forKey: id) }?.continuation.resume(returning: false)
        }
    }
}

/// Counts running threads and lets async callers wait until all have exited.
final class ExitLatch: Sendable {
    private struct State {
        var running = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Registers a thread about to start.
    func enter() { state.withLock { $0.running += 1 } }

    /// Called by a thread as its last act.
    func leave() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.running -= 1
            guard state.running <= 0 else { return [] }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once every registered thread has left.
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                guard state.running > 0 else { return true }
                state.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
