import Histogram

/// Latencies are recorded in nanoseconds, 3 significant digits, up to an hour.
typealias LatencyHistogram = Histogram<UInt64>

extension Histogram where Count == UInt64 {
    static func latency() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
    }

    @inline(__always)
    mutating func recordClamped(_ nanoseconds: UInt64) {
        record(Swift.min(nanoseconds, highestTrackableValue))
    }

    /// Value at a percentile, in milliseconds.
    func ms(_ percentile: Double) -> Double {
        totalCount == 0 ? 0 : Double(valueAtPercentile(percentile)) / 1e6
    }

    var maxMs: Double { totalCount == 0 ? 0 : Double(max) / 1e6 }
}

/// An error as the daemon (or the harness) reported it.
struct ErrorKey: Hashable, Sendable, Comparable {
    var code: String
    var reason: String

    static func < (lhs: ErrorKey, rhs: ErrorKey) -> Bool {
        (lhs.code, lhs.reason) < (rhs.code, rhs.reason)
    }
}

/// Counts for one kind of call (mixed runs several).
struct OpStats: Sendable {
    var histogram = LatencyHistogram.latency()
    var ok: UInt64 = 0
    var errors: UInt64 = 0

    mutating func add(_ other: OpStats) {
        histogram.add(other.histogram)
        ok += other.ok
        errors += other.errors
    }
}

/// What happened in one interval (a second of the progress line).
struct IntervalSnapshot: Sendable {
    var histogram = LatencyHistogram.latency()
    var calls: UInt64 = 0
    var errors: UInt64 = 0
    var errorsByCode: [String: UInt64] = [:]
    var inFlight = 0
    var backlog = 0

    mutating func add(_ other: IntervalSnapshot) {
        histogram.add(other.histogram)
        calls += other.calls
        errors += other.errors
        for (code, count) in other.errorsByCode { errorsByCode[code, default: 0] += count }
        inFlight += other.inFlight
        backlog += other.backlog
    }
}

/// Everything recorded, merged from every recorder at the end.
struct Totals: Sendable {
    var ops: [OpStats]
    var errors: [ErrorKey: UInt64] = [:]
    /// Responses to calls scheduled during the warmup (not counted).
    var warmupCalls: UInt64 = 0
    /// Bytes of the measured responses, length prefixes included.
    var responseBytes: UInt64 = 0
    var responses: UInt64 = 0

    init(opCount: Int) { ops = Array(repeating: OpStats(), count: opCount) }

    var all: OpStats {
        var merged = OpStats()
        for op in ops { merged.add(op) }
        return merged
    }

    mutating func add(_ other: Totals) {
        for index in ops.indices where index < other.ops.count { ops[index].add(other.ops[index]) }
        for (key, count) in other.errors { errors[key, default: 0] += count }
        warmupCalls += other.warmupCalls
        responseBytes += other.responseBytes
        responses += other.responses
    }
}

/// Recording state of one thread (an event loop, or a lock around it for
/// the MoatClient engine). Never shared without its owner's confinement.
struct RecorderState: Sendable {
    var totals: Totals
    var interval = IntervalSnapshot()

    init(opCount: Int) { totals = Totals(opCount: opCount) }

    /// Records a completed call. `measured` is false for warmup calls.
    @inline(__always)
    mutating func record(op: Int, latencyNs: UInt64, code: UInt32, reason: @autoclosure () -> String, measured: Bool) {
        interval.histogram.recordClamped(latencyNs)
        interval.calls += 1
        if code != 0 {
            interval.errors += 1
            interval.errorsByCode[CodeName.name(code), default: 0] += 1
        }
        guard measured else {
            totals.warmupCalls += 1
            return
        }
        totals.ops[op].histogram.recordClamped(latencyNs)
        if code == 0 {
            totals.ops[op].ok += 1
        } else {
            totals.ops[op].errors += 1
            totals.errors[ErrorKey(code: CodeName.name(code), reason: reason()), default: 0] += 1
        }
    }

    /// Records a call that got no answer (connection lost, client timeout).
    mutating func recordFailure(op: Int, code: UInt32, reason: String, measured: Bool) {
        interval.calls += 1
        interval.errors += 1
        interval.errorsByCode[CodeName.name(code), default: 0] += 1
        guard measured else { return }
        totals.ops[op].errors += 1
        totals.errors[ErrorKey(code: CodeName.name(code), reason: reason), default: 0] += 1
    }

    mutating func takeInterval() -> IntervalSnapshot {
        let taken = interval
        interval.histogram.reset()
        interval.calls = 0
        interval.errors = 0
        interval.errorsByCode.removeAll(keepingCapacity: true)
        return taken
    }
}
