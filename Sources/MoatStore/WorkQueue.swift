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

        var count: Int { jobs.count - head }
    }

    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)

    /// Appends a job. Returns false (and drops the job) if the queue is closed.
    func push(_ job: Job) -> Bool {
        let (accepted, wake) = state.withLock { state -> (Bool, Bool) in
            guard !state.isClosed else { return (false, false) }
            state.jobs.append(job)
            guard state.sleepers > 0 else { return (true, false) }
            state.sleepers -= 1
            return (true, true)
        }
        if wake { wakeUp.signal() }
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
        let sleepers = state.withLock { state -> Int in
            state.isClosed = true
            defer { state.sleepers = 0 }
            return state.sleepers
        }
        for _ in 0..<sleepers { wakeUp.signal() }
    }

    /// The number of queued jobs.
    var count: Int { state.withLock { $0.count } }
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
