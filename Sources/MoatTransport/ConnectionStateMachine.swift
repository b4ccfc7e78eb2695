import NIOCore

/// The state of one server connection, as a plain value: which calls are in
/// flight, which frames wait for a free slot, whether reading is held for
/// backpressure, whether the connection drains or closes, and when it last
/// saw activity. Each event returns what the channel handler must do; the
/// struct itself does no I/O and reads no clock (the handler passes the
/// event loop's time, which an `EmbeddedEventLoop` lets tests move by hand).
///
/// `Frame` is a received frame not yet served; `Call` is what the handler
/// keeps per call in flight (its task and deadline timer), handed back when
/// the call must be cancelled.
struct ConnectionStateMachine<Frame, Call> {
    /// What to do with a frame that arrived.
    enum FrameAction {
        /// Serve it now.
        case process(Frame)
        /// Nothing: it was queued behind a full window, or the connection is closing.
        case none
    }

    /// What to do with a request the handler decoded.
    enum AdmitAction: Equatable {
        /// Resolve and run it.
        case start
        /// Its id is already in flight: a protocol error.
        case duplicateID
        /// The connection drains: answer SHUTTING_DOWN.
        case refuseDraining
    }

    /// What to do when a slot freed and the queued frames were served.
    struct ResumeAction: Equatable {
        /// Flush writes made outside a read cycle.
        var flush = false
        /// Ask the channel for the read that was held back.
        var read = false
        /// Close: the connection was draining or half-closed and is done.
        var close = false
    }

    /// What to do when the idle timer fires.
    enum IdleAction: Equatable {
        /// Close the connection.
        case close
        /// Check again at this deadline.
        case checkAgain(at: NIODeadline)
        /// Nothing (already closing).
        case none
    }

    let maxInFlight: Int
    let idleTimeout: TimeAmount

    private(set) var inFlight: [UInt64: Call] = [:]
    private(set) var queued = CircularBuffer<Frame>()
    private(set) var lastActivity: NIODeadline
    /// A read was asked for while the window was full; issue it once a slot frees.
    private(set) var readHeld = false
    /// The server is shutting down: no new calls; close when the last ends.
    private(set) var draining = false
    /// The client half-closed: close when the last call ends.
    private(set) var inputClosed = false
    /// Close was decided; everything after is ignored.
    private(set) var closing = false
    /// A response was written without a flush.
    private(set) var needsFlush = false

    init(maxInFlight: Int, idleTimeout: TimeAmount, now: NIODeadline) {
        self.maxInFlight = maxInFlight
        self.idleTimeout = idleTimeout
        self.lastActivity = now
    }

    private var windowFull: Bool { inFlight.count >= maxInFlight || !queued.isEmpty }

    // MARK: Reading

    /// The connection started: the first idle check is due one timeout from now.
    mutating func started(now: NIODeadline) -> NIODeadline {
        lastActivity = now
        return now + idleTimeout
    }

    /// A frame arrived.
    mutating func frameReceived(_ frame: Frame, now: NIODeadline) -> FrameAction {
        lastActivity = now
        guard !closing else { return .none }
        if windowFull {
            // Frames that arrived in the same read as the one that filled
            // the window wait here; no further read happens until a slot frees.
            queued.append(frame)
            return .none
        }
        return .process(frame)
    }

    /// The channel asks for more bytes: whether to read now (false: held
    /// until a slot frees).
    mutating func readRequested() -> Bool {
        if windowFull {
            readHeld = true
            return false
        }
        return true
    }

    // MARK: Calls

    /// A request with `id` was decoded.
    func admit(id: UInt64) -> AdmitAction {
        if inFlight[id] != nil { return .duplicateID }
        if draining { return .refuseDraining }
        return .start
    }

    /// A call went to a task.
    mutating func callStarted(id: UInt64, _ call: Call) {
        inFlight[id] = call
    }

    /// Changes the record of a call still in flight; false if it already ended.
    @discardableResult
    mutating func updateCall(id: UInt64, _ change: (inout Call) -> Void) -> Bool {
        guard var call = inFlight[id] else { return false }
        change(&call)
        inFlight[id] = call
        return true
    }

    /// A call ended (answered or timed out). Returns its record, or nil if
    /// it had already ended or the connection was torn down.
    mutating func callEnded(id: UInt64) -> Call? {
        inFlight.removeValue(forKey: id)
    }

    /// After a call ended: the next queued frame to serve, if a slot is free.
    mutating func nextQueuedFrame() -> Frame? {
        guard !closing, inFlight.count < maxInFlight else { return nil }
        return queued.popFirst()
    }

    /// After the queued frames that fit were served: what else to do.
    mutating func resume() -> ResumeAction {
        guard !closing else { return ResumeAction() }
        var action = ResumeAction()
        if needsFlush {
            needsFlush = false
            action.flush = true
        }
        if readHeld, !windowFull {
            readHeld = false
            action.read = true
        }
        action.close = closeIfFinished()
        return action
    }

    // MARK: Writing

    /// A response was written; `flushed` tells whether it was flushed.
    mutating func wrote(flushed: Bool) {
        if !flushed { needsFlush = true }
    }

    /// A read cycle ended: whether writes wait for a flush.
    mutating func readComplete() -> Bool {
        defer { needsFlush = false }
        return needsFlush
    }

    // MARK: Ending

    /// The server started to shut down. Returns whether to close now.
    mutating func drain() -> Bool {
        draining = true
        return closeIfFinished()
    }

    /// The client half-closed. Returns whether to close now.
    mutating func inputEnded() -> Bool {
        inputClosed = true
        return closeIfFinished()
    }

    /// A connection-level error: returns the calls to cancel, or nil if the
    /// connection was already closing (send nothing more).
    mutating func protocolError() -> [Call]? {
        guard !closing else { return nil }
        closing = true
        return takeEverything()
    }

    /// The idle timer fired.
    mutating func idleCheck(now: NIODeadline) -> IdleAction {
        guard !closing else { return .none }
        let idleUntil = lastActivity + idleTimeout
        if inFlight.isEmpty, queued.isEmpty, idleUntil <= now {
            closing = true
            return .close
        }
        return .checkAgain(at: max(idleUntil, now + .nanoseconds(idleTimeout.nanoseconds / 10)))
    }

    /// The channel went away: returns the calls to cancel.
    mutating func tearDown() -> [Call] {
        takeEverything()
    }

    private mutating func takeEverything() -> [Call] {
        let calls = Array(inFlight.values)
        inFlight.removeAll()
        queued.removeAll()
        return calls
    }

    private mutating func closeIfFinished() -> Bool {
        guard !closing, draining || inputClosed, inFlight.isEmpty, queued.isEmpty else { return false }
        closing = true
        return true
    }
}
