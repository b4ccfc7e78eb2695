import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// Why the harness itself gave up on calls, as recorded next to the
/// daemon's own reasons in a run's failures. Not daemon reasons: the server
/// never sends these.
enum BenchFailureReason: String {
    /// A frame that is not a Response.
    case undecodableResponse = "UNDECODABLE_RESPONSE"
    /// A connection-level error without a reason, or a socket error.
    case connectionError = "CONNECTION_ERROR"
    /// The daemon closed the connection with calls in flight.
    case connectionClosed = "CONNECTION_CLOSED"
    /// Calls still unanswered when the drain timeout ended the run.
    case noAnswerInDrainTimeout = "NO_ANSWER_IN_DRAIN_TIMEOUT"
}

/// How the load is applied.
struct LoadShape: Sendable {
    var connections = 1
    /// Calls in flight per connection (closed loop: exactly this many; open
    /// loop: at most this many, the rest wait in the client's backlog and
    /// their wait counts).
    var inFlight = 1
    /// Measured seconds (after the warmup). Nil with `requests`.
    var duration: Double? = 10
    /// Measured calls in total (after the warmup), instead of a duration.
    var requests: Int? = nil
    var warmup: Double = 0
    /// Open loop: calls per second in total, spread evenly over connections.
    var rate: Double? = nil
    /// Client event-loop threads.
    var threads = 1
    /// How long to wait for answers after the end before counting them lost.
    var drainTimeout: Double = 10
    /// Print the progress line every second.
    var progress = true
    /// Prefix of the progress line.
    var label = ""

    var isOpenLoop: Bool { rate != nil }

    var describe: String {
        var parts = ["\(connections) connection\(connections == 1 ? "" : "s") × \(inFlight) in flight"]
        if let rate {
            parts.append("open loop at \(Int(rate)) calls/s (latency from the scheduled time)")
        } else {
            parts.append("closed loop")
        }
        if let requests {
            parts.append("\(requests) calls")
        } else if let duration {
            parts.append(String(format: "%gs", duration))
        }
        if warmup > 0 { parts.append(String(format: "+%gs warmup", warmup)) }
        parts.append("\(threads) client thread\(threads == 1 ? "" : "s")")
        return parts.joined(separator: ", ")
    }
}

/// Produces the calls of one connection. Called only on that connection's
/// event loop.
protocol Workload: AnyObject {
    /// Writes the next request with `id` into `buffer` and returns its op
    /// index (which kind of call, for the per-op statistics) and a tag
    /// handed back on completion; nil when the connection has nothing more
    /// to send.
    func next(id: UInt64, into buffer: inout ByteBuffer) -> (op: Int, tag: Int)?
    /// A response arrived for a call made with `tag`.
    func completed(op: Int, tag: Int, response: ScannedResponse, frame: UnsafeRawBufferPointer)
    /// Whether a completion gave the workload more to send after `next`
    /// returned nil (a call to retry): the connection then goes on.
    var hasPendingWork: Bool { get }
}

extension Workload {
    func completed(op: Int, tag: Int, response: ScannedResponse, frame: UnsafeRawBufferPointer) {}
    var hasPendingWork: Bool { false }
}

/// Monotonic nanoseconds.
@inline(__always)
func nowNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// One event loop's recorder; touched only on that loop.
final class LoopRecorder: @unchecked Sendable {
    var state: RecorderState
    /// Latest completion time of a measured call.
    var lastMeasuredNs: UInt64 = 0
    init(opCount: Int) { state = RecorderState(opCount: opCount) }
}

/// The phases of a run, in monotonic nanoseconds.
struct Schedule: Sendable {
    var startNs: UInt64
    var measureStartNs: UInt64
    /// UInt64.max with a request count.
    var measureEndNs: UInt64
}

/// Drives one connection: keeps its calls in flight, matches responses by
/// id, records latencies. All on the channel's event loop.
final class LoadConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Slot {
        var id: UInt64 = 0
        /// Latency counts from here: the send time (closed loop) or the
        /// scheduled time (open loop).
        var startNs: UInt64 = 0
        var op: Int = 0
        var tag: Int = 0
        var measured = false
    }

    let index: Int
    let workload: any Workload
    let recorder: LoopRecorder
    private let shape: LoadShape
    private let opCount: Int
    private let finished: FinishedBox
    private var schedule = Schedule(startNs: 0, measureStartNs: 0, measureEndNs: .max)

    private var context: ChannelHandlerContext?
    private var slots: [Slot]
    private var freeSlots: [Int]
    private var sequence: UInt64 = 0
    private var outbound: ByteBuffer
    private var cumulation: ByteBuffer?
    private var started = false
    private var done = false
    private var exhausted = false
    /// Measured calls this connection may still send (request-count mode).
    private var quota: Int
    /// Open loop: the next scheduled send and the interval between sends.
    private var nextScheduledNs: UInt64 = 0
    private var intervalNs: Double = 0
    private var scheduledCount: UInt64 = 0
    private var backlog = CircularBuffer<UInt64>(initialCapacity: 64)
    private var timer: Scheduled<Void>?

    init(index: Int, workload: any Workload, recorder: LoopRecorder, shape: LoadShape, opCount: Int, quota: Int, finished: FinishedBox) {
        self.index = index
        self.workload = workload
        self.recorder = recorder
        self.shape = shape
        self.opCount = opCount
        self.quota = quota
        self.finished = finished
        self.slots = Array(repeating: Slot(), count: max(1, shape.inFlight))
        self.freeSlots = Array((0..<max(1, shape.inFlight)).reversed())
        self.outbound = ByteBufferAllocator().buffer(capacity: 4096)
    }

    var inFlight: Int { slots.count - freeSlots.count }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    // MARK: Running

    /// Starts sending at the schedule's start.
    func start(_ schedule: Schedule) {
        guard !done else { return }
        self.schedule = schedule
        started = true
        if let rate = shape.rate {
            intervalNs = 1e9 / (rate / Double(shape.connections))
            // Spread the connections' schedules over one interval.
            nextScheduledNs = schedule.startNs + UInt64(intervalNs * Double(index) / Double(shape.connections))
            pumpOpenLoop()
        } else {
            fill(now: nowNs())
            flush()
        }
        finishIfDone()
    }

    /// Closed loop: sends until every slot is busy or there is nothing more.
    private func fill(now: UInt64) {
        while !freeSlots.isEmpty, !exhausted {
            if now >= schedule.measureEndNs {
                exhausted = true
                break
            }
            let measured = now >= schedule.measureStartNs
            if measured && quota <= 0 {
                exhausted = true
                break
            }
            if !send(startNs: now, measured: measured) {
                exhausted = true
                break
            }
            if measured { quota -= 1 }
        }
    }

    /// Open loop: queues every call whose time has come, sends what the
    /// window allows, and sets the timer for the next one.
    private func pumpOpenLoop() {
        guard !done else { return }
        let now = nowNs()
        while !exhausted, nextScheduledNs <= now {
            if nextScheduledNs >= schedule.measureEndNs || (nextScheduledNs >= schedule.measureStartNs && quota <= 0) {
                exhausted = true
                break
            }
            if nextScheduledNs >= schedule.measureStartNs { quota -= 1 }
            backlog.append(nextScheduledNs)
            scheduledCount += 1
            nextScheduledNs =
                schedule.startNs + UInt64(intervalNs * (Double(scheduledCount) + Double(index) / Double(shape.connections)))
        }
        drainBacklog()
        flush()
        if !exhausted, let context {
            let delay = TimeAmount.nanoseconds(Int64(nextScheduledNs) - Int64(now))
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
                timer = nil
                pumpOpenLoop()
                finishIfDone()
            }
        }
    }

    private func drainBacklog() {
        while !freeSlots.isEmpty, let scheduled = backlog.first {
            if !send(startNs: scheduled, measured: scheduled >= schedule.measureStartNs) {
                backlog.removeAll()
                exhausted = true
                return
            }
            backlog.removeFirst()
        }
    }

    /// Writes one call into the outbound buffer. False if the workload has
    /// nothing more.
    @inline(__always)
    private func send(startNs: UInt64, measured: Bool) -> Bool {
        guard let slotIndex = freeSlots.last else { return false }
        sequence &+= 1
        let id = UInt64(slotIndex) + 1 + UInt64(slots.count) &* sequence
        guard let (op, tag) = workload.next(id: id, into: &outbound) else { return false }
        freeSlots.removeLast()
        slots[slotIndex] = Slot(id: id, startNs: startNs, op: op, tag: tag, measured: measured)
        return true
    }

    private func flush() {
        guard let context, outbound.readableBytes > 0 else { return }
        context.writeAndFlush(wrapOutboundOut(outbound), promise: nil)
        // The write normally completes at once and releases the storage, so
        // clearing reuses it without a copy.
        outbound.clear()
    }

    private func finishIfDone() {
        guard started, !done, exhausted, inFlight == 0, backlog.isEmpty else { return }
        finish()
    }

    private func finish() {
        guard !done else { return }
        done = true
        timer?.cancel()
        timer = nil
        finished.atomic.add(1, ordering: .sequentiallyConsistent)
        context?.close(promise: nil)
    }

    /// Gives up on the calls still in flight (counted as lost) and stops.
    func abort(code: UInt32, reason: String) {
        guard !done else { return }
        if inFlight == 0 && backlog.isEmpty {
            // Nothing outstanding (say, the daemon refused the connection
            // before a call): still count it, or it would go unnoticed.
            recorder.state.recordFailure(op: 0, code: code, reason: reason, measured: true)
        }
        for index in slots.indices where slots[index].id != 0 {
            let slot = slots[index]
            recorder.state.recordFailure(op: slot.op, code: code, reason: reason, measured: slot.measured)
            slots[index].id = 0
        }
        for scheduled in backlog {
            recorder.state.recordFailure(
                op: 0, code: code, reason: reason, measured: scheduled >= schedule.measureStartNs)
        }
        freeSlots = Array(slots.indices)
        backlog.removeAll()
        exhausted = true
        finish()
    }

    /// Calls in flight and calls waiting in the open-loop backlog.
    var load: (inFlight: Int, backlog: Int) { (inFlight, backlog.count) }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if var pending = cumulation {
            pending.writeBuffer(&buffer)
            cumulation = nil
            buffer = pending
        }
        let now = nowNs()
        while buffer.readableBytes >= 4 {
            let length = Int(buffer.getInteger(at: buffer.readerIndex, as: UInt32.self)!)
            guard buffer.readableBytes >= 4 + length else { break }
            buffer.moveReaderIndex(forwardBy: 4)
            buffer.readWithUnsafeReadableBytes { bytes in
                let frame = UnsafeRawBufferPointer(rebasing: bytes[0..<length])
                handle(frame: frame, now: now)
                return length
            }
            if done { return }
        }
        if buffer.readableBytes > 0 {
            buffer.discardReadBytes()
            cumulation = buffer
        }
    }

    private func handle(frame: UnsafeRawBufferPointer, now: UInt64) {
        guard let response = try? ScannedResponse.scan(frame) else {
            abort(code: 13, reason: BenchFailureReason.undecodableResponse.rawValue)
            return
        }
        if response.id == 0 {
            // A connection-level error; the daemon closes the connection.
            let reason = response.reason.map { String(decoding: frame[$0], as: UTF8.self) } ?? ""
            abort(code: response.code, reason: reason.isEmpty ? BenchFailureReason.connectionError.rawValue : reason)
            return
        }
        let slotIndex = Int((response.id - 1) % UInt64(slots.count))
        let slot = slots[slotIndex]
        guard slot.id == response.id else { return }  // Not ours (already given up).
        slots[slotIndex].id = 0
        freeSlots.append(slotIndex)
        let latency = now &- slot.startNs
        recorder.state.record(
            op: slot.op, latencyNs: latency, code: response.code,
            reason: response.reason.map { String(decoding: frame[$0], as: UTF8.self) } ?? "",
            measured: slot.measured)
        if slot.measured {
            if now > recorder.lastMeasuredNs { recorder.lastMeasuredNs = now }
            recorder.state.totals.responseBytes &+= UInt64(frame.count + 4)
            recorder.state.totals.responses &+= 1
        }
        workload.completed(op: slot.op, tag: slot.tag, response: response, frame: frame)
        // A retry queued by the completion: not exhausted after all.
        if exhausted, !shape.isOpenLoop, workload.hasPendingWork { exhausted = false }
        if !started || done { return }
        if shape.isOpenLoop {
            drainBacklog()
        } else {
            fill(now: now)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        finishIfDone()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done { abort(code: 14, reason: BenchFailureReason.connectionClosed.rawValue) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        abort(code: 14, reason: BenchFailureReason.connectionError.rawValue)
        context.close(promise: nil)
    }
}

/// The outcome of a run.
struct RunResult: Sendable {
    var totals: Totals
    var timeline: [TimelinePoint]
    /// Seconds of measurement (the duration, or until the last measured
    /// answer with a request count).
    var measuredSeconds: Double
    var wallSeconds: Double
    var cpu: CPUUse? = nil
}

/// CPU spent by the client (and the daemon, given its pid) over the whole
/// run, warmup included.
struct CPUUse: Sendable, Codable {
    var clientSeconds: Double
    var daemonSeconds: Double?
    var clientMicrosPerCall: Double
    var daemonMicrosPerCall: Double?
    /// Share of one CPU.
    var clientUtilization: Double
    var daemonUtilization: Double?

    init(clientSeconds: Double, daemonSeconds: Double?, calls: Double, wallSeconds: Double) {
        self.clientSeconds = clientSeconds
        self.daemonSeconds = daemonSeconds
        clientMicrosPerCall = calls > 0 ? clientSeconds * 1e6 / calls : 0
        daemonMicrosPerCall = daemonSeconds.map { calls > 0 ? $0 * 1e6 / calls : 0 }
        clientUtilization = clientSeconds / max(wallSeconds, 1e-9)
        daemonUtilization = daemonSeconds.map { $0 / max(wallSeconds, 1e-9) }
    }
}

/// One second of the run.
struct TimelinePoint: Sendable, Codable {
    var t: Double
    var warmup: Bool
    var calls: UInt64
    var callsPerSecond: Double
    var errors: UInt64
    var p50Ms: Double
    var p90Ms: Double
    var p99Ms: Double
    var maxMs: Double
    var inFlight: Int
    var backlog: Int
}

/// Runs workloads over raw NIO connections.
enum Engine {
    /// Connects, runs the shape, and returns what was recorded.
    /// `makeWorkload(i)` builds connection i's workload; `quotas` splits a
    /// request count (or `Int.max`).
    static func run(
        socketPath: String, shape: LoadShape, opNames: [String],
        makeWorkload: (Int) -> any Workload
    ) async throws -> RunResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, shape.threads))
        do {
            let result = try await run(group: group, socketPath: socketPath, shape: shape, opNames: opNames, makeWorkload: makeWorkload)
            try? await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func run(
        group: MultiThreadedEventLoopGroup, socketPath: String, shape: LoadShape, opNames: [String],
        makeWorkload: (Int) -> any Workload
    ) async throws -> RunResult {
        let loops = Array(group.makeIterator())
        let recorders = loops.map { _ in LoopRecorder(opCount: opNames.count) }
        let finishedBox = FinishedBox(Atomic<Int>(0))

        // Split a request count over connections.
        var quotas = Array(repeating: Int.max, count: shape.connections)
        if let requests = shape.requests {
            for index in 0..<shape.connections {
                quotas[index] = requests / shape.connections + (index < requests % shape.connections ? 1 : 0)
            }
        }

        var handlers: [LoadConnection] = []
        var channels: [any Channel] = []
        for index in 0..<shape.connections {
            let loopIndex = index % loops.count
            let handler = LoadConnection(
                index: index, workload: makeWorkload(index), recorder: recorders[loopIndex], shape: shape,
                opCount: opNames.count, quota: quotas[index], finished: finishedBox)
            handlers.append(handler)
        }
        for (index, handler) in handlers.enumerated() {
            let loop = loops[index % loops.count]
            do {
                let channel = try await ClientBootstrap(group: loop)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(handler)
                        }
                    }
                    .connect(unixDomainSocketPath: socketPath).get()
                channels.append(channel)
            } catch {
                for channel in channels { try? await channel.close() }
                throw BenchError("cannot connect to \(socketPath): \(error)")
            }
        }

        let startNs = nowNs() + 5_000_000
        let measureStartNs = startNs + UInt64(shape.warmup * 1e9)
        var measureEndNs = UInt64.max
        if shape.requests == nil, let duration = shape.duration {
            measureEndNs = measureStartNs + UInt64(duration * 1e9)
        }
        let schedule = Schedule(startNs: startNs, measureStartNs: measureStartNs, measureEndNs: measureEndNs)
        let startIn = TimeAmount.nanoseconds(Int64(startNs) - Int64(nowNs()))
        for (index, handler) in handlers.enumerated() {
            channels[index].eventLoop.scheduleTask(in: startIn) { handler.start(schedule) }
        }

        // The progress loop: one line a second until every connection is done.
        var timeline: [TimelinePoint] = []
        var lastTick = nowNs()
        var lastProgressNs = lastTick
        var aborted = false
        while finishedBox.atomic.load(ordering: .sequentiallyConsistent) < shape.connections {
            let nextTick = lastTick + 1_000_000_000
            while nowNs() < nextTick, finishedBox.atomic.load(ordering: .sequentiallyConsistent) < shape.connections {
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
            let tick = nowNs()
            let seconds = Double(tick - lastTick) / 1e9
            let midpoint = lastTick / 2 + tick / 2
            lastTick = tick
            var snapshot = IntervalSnapshot()
            for (loopIndex, loop) in loops.enumerated() {
                let recorder = recorders[loopIndex]
                let loopHandlers = handlers.enumerated().filter { $0.offset % loops.count == loopIndex }.map(\.element)
                let part = try await loop.submit { () -> IntervalSnapshot in
                    var part = recorder.state.takeInterval()
                    for handler in loopHandlers {
                        let load = handler.load
                        part.inFlight += load.inFlight
                        part.backlog += load.backlog
                    }
                    return part
                }.get()
                snapshot.add(part)
            }
            let elapsed = Double(Int64(tick) - Int64(startNs)) / 1e9
            let point = TimelinePoint(
                t: elapsed, warmup: midpoint < measureStartNs, calls: snapshot.calls,
                callsPerSecond: Double(snapshot.calls) / seconds, errors: snapshot.errors,
                p50Ms: snapshot.histogram.ms(50), p90Ms: snapshot.histogram.ms(90), p99Ms: snapshot.histogram.ms(99),
                maxMs: snapshot.histogram.maxMs, inFlight: snapshot.inFlight, backlog: snapshot.backlog)
            if snapshot.calls > 0 || elapsed > 0.5 { timeline.append(point) }
            if shape.progress { printProgress(point, snapshot, shape: shape) }

            if snapshot.calls > 0 { lastProgressNs = tick }
            // Nothing answered for the drain timeout (past the end, or stalled
            // with a request count): count what is outstanding as lost.
            let stalled = Double(tick - lastProgressNs) / 1e9 > shape.drainTimeout
            let overdue = measureEndNs != .max && tick > measureEndNs && Double(tick - measureEndNs) / 1e9 > shape.drainTimeout
            if !aborted, stalled || overdue {
                aborted = true
                for (index, handler) in handlers.enumerated() {
                    channels[index].eventLoop.execute { handler.abort(code: 4, reason: BenchFailureReason.noAnswerInDrainTimeout.rawValue) }
                }
            }
        }
        let endNs = nowNs()
        for channel in channels { try? await channel.closeFuture.get() }

        var totals = Totals(opCount: opNames.count)
        var lastMeasured: UInt64 = 0
        for (loopIndex, loop) in loops.enumerated() {
            let recorder = recorders[loopIndex]
            let (part, last) = try await loop.submit { (recorder.state.totals, recorder.lastMeasuredNs) }.get()
            totals.add(part)
            lastMeasured = max(lastMeasured, last)
        }
        let measured: Double
        if measureEndNs != .max, let duration = shape.duration {
            measured = duration
        } else {
            measured = max(1e-9, Double(Int64(max(lastMeasured, measureStartNs)) - Int64(measureStartNs)) / 1e9)
        }
        return RunResult(
            totals: totals, timeline: timeline, measuredSeconds: measured,
            wallSeconds: Double(endNs - startNs) / 1e9)
    }

    static func printProgress(_ point: TimelinePoint, _ snapshot: IntervalSnapshot, shape: LoadShape) {
        var line = String(
            format: "%@[%5.1fs]%@ %9.0f calls/s  p50 %7.3f ms  p99 %7.3f ms  max %8.3f ms", shape.label, point.t,
            point.warmup ? " warmup" : "", point.callsPerSecond, point.p50Ms, point.p99Ms, point.maxMs)
        if shape.isOpenLoop { line += "  backlog \(point.backlog)" }
        if snapshot.errors > 0 {
            let codes = snapshot.errorsByCode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            line += "  errors: " + codes.joined(separator: ", ")
        } else {
            line += "  errors: 0"
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// Carries the Atomic (which is ~Copyable) by reference.
final class FinishedBox: Sendable {
    let atomic: Atomic<Int>
    init(_ atomic: consuming Atomic<Int>) { self.atomic = atomic }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
