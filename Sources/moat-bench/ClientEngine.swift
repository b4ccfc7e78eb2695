import Foundation
import MoatClient
import Synchronization

/// The same load through the public `MoatClient` (one instance per
/// connection, `--in-flight` tasks sharing each): what a Swift service
/// calling Moat would see, client costs included. Closed loop only.
enum ClientEngine {
    /// Gives a task its calls.
    protocol CallSource: AnyObject, Sendable {
        func next() -> (MethodDescriptor, Data, CallOptions)
    }

    final class Recorder: Sendable {
        let state: Mutex<RecorderState>
        init(opCount: Int) { state = Mutex(RecorderState(opCount: opCount)) }
    }

    static func run(
        socketPath: String, shape: LoadShape, opNames: [String], makeSource: (Int, Int) -> any CallSource
    ) async throws -> RunResult {
        let clients = (0..<shape.connections).map { _ in MoatClient(socketPath: socketPath) }
        defer { Task { for client in clients { await client.close() } } }
        // Connect every client before the clock starts.
        for client in clients { _ = try await client.health.check() }
        let recorders = clients.map { _ in Recorder(opCount: opNames.count) }
        let remaining = FinishedBox(Atomic<Int>(shape.requests ?? Int.max))
        let startNs = nowNs()
        let measureStartNs = startNs + UInt64(shape.warmup * 1e9)
        let measureEndNs = shape.requests == nil ? measureStartNs + UInt64((shape.duration ?? 10) * 1e9) : UInt64.max
        let lastMeasured = LastMeasured()

        var sources: [(Int, any CallSource)] = []
        for connection in 0..<shape.connections {
            for task in 0..<shape.inFlight { sources.append((connection, makeSource(connection, task))) }
        }
        let running = FinishedBox(Atomic<Int>(sources.count))
        let timelineTask = Task { () -> [TimelinePoint] in
            var timeline: [TimelinePoint] = []
            var lastTick = startNs
            while running.atomic.load(ordering: .relaxed) > 0 {
                try? await Task.sleep(nanoseconds: 1_000_000_000)
                let tick = nowNs()
                var snapshot = IntervalSnapshot()
                for recorder in recorders { snapshot.add(recorder.state.withLock { $0.takeInterval() }) }
                let seconds = Double(tick - lastTick) / 1e9
                let midpoint = lastTick / 2 + tick / 2
                lastTick = tick
                let point = TimelinePoint(
                    t: Double(tick - startNs) / 1e9, warmup: midpoint < measureStartNs, calls: snapshot.calls,
                    callsPerSecond: Double(snapshot.calls) / seconds, errors: snapshot.errors,
                    p50Ms: snapshot.histogram.ms(50), p90Ms: snapshot.histogram.ms(90),
                    p99Ms: snapshot.histogram.ms(99), maxMs: snapshot.histogram.maxMs, inFlight: 0, backlog: 0)
                timeline.append(point)
                if shape.progress { Engine.printProgress(point, snapshot, shape: shape) }
            }
            return timeline
        }
        await withTaskGroup(of: Void.self) { group in
            for (connection, source) in sources {
                let client = clients[connection]
                let recorder = recorders[connection]
                group.addTask {
                    defer { running.atomic.subtract(1, ordering: .relaxed) }
                    while true {
                        let start = nowNs()
                        if start >= measureEndNs { return }
                        let measured = start >= measureStartNs
                        if measured, remaining.atomic.subtract(1, ordering: .relaxed).newValue < 0 { return }
                        let (method, payload, options) = source.next()
                        var code: UInt32 = 0
                        var reason = ""
                        do {
                            _ = try await client.call(method, payload: payload, options: options)
                        } catch let error as RPCError {
                            code = UInt32(error.code.rawValue)
                            reason = error.reason
                        } catch {
                            code = 2
                            reason = "\(type(of: error))"
                        }
                        let end = nowNs()
                        recorder.state.withLock {
                            $0.record(op: 0, latencyNs: end - start, code: code, reason: reason, measured: measured)
                        }
                        if measured { lastMeasured.value.withLock { $0 = max($0, end) } }
                    }
                }
            }
        }
        let timeline = await timelineTask.value
        let endNs = nowNs()
        var totals = Totals(opCount: opNames.count)
        for recorder in recorders { totals.add(recorder.state.withLock { $0.totals }) }
        let measured: Double
        if measureEndNs != .max {
            measured = shape.duration ?? 10
        } else {
            measured = max(1e-9, Double(Int64(max(lastMeasured.value.withLock { $0 }, measureStartNs)) - Int64(measureStartNs)) / 1e9)
        }
        return RunResult(
            totals: totals, timeline: timeline, measuredSeconds: measured, wallSeconds: Double(endNs - startNs) / 1e9)
    }
}

/// Round-robin over prepared calls.
final class ClientCalls: ClientEngine.CallSource, @unchecked Sendable {
    private let calls: [(MethodDescriptor, Data, CallOptions)]
    private var position: Int
    init(_ calls: [(MethodDescriptor, Data, CallOptions)], start: Int) {
        self.calls = calls
        self.position = start % max(1, calls.count)
    }

    func next() -> (MethodDescriptor, Data, CallOptions) {
        let call = calls[position]
        position += 1
        if position == calls.count { position = 0 }
        return call
    }
}

final class LastMeasured: Sendable {
    let value = Mutex<UInt64>(0)
}
