import Foundation
import MoatRPC
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `moat_rpc_requests_total{method,code}` and
/// `moat_rpc_request_duration_seconds{method}`, kept off any shared lock.
///
/// Every dispatched call, fast path included, lands here, so the cost is
/// paid on every Validate. A Prometheus histogram takes a lock and writes 17
/// cumulative buckets, and both event loops write the same cache lines on
/// every call. Here each method has one row of relaxed atomic cells per
/// thread slot (calls by code, non-cumulative buckets, the sum), and a
/// thread always adds to its own slot's row. A call costs three uncontended
/// atomic adds on lines no other event loop writes. A scrape sums the slots
/// and writes the text exactly as swift-prometheus writes a counter and a
/// duration histogram, so the families look the same to Prometheus.
final class RPCCallCounters: Sendable {
    /// The counters of this process (like swift-metrics' bootstrap, one per
    /// process: every router instrumented in it adds to the same methods).
    static let shared = RPCCallCounters()

    /// Upper bounds of the duration buckets: Validate takes tens of
    /// microseconds, the Prometheus defaults start at 5 ms. The same bounds
    /// serve every other duration histogram of the process.
    static let bucketBounds: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
        .seconds(5), .seconds(10),
    ]

    private let methods = Mutex<[String: Method]>([:])

    /// The counters of one method path, made on first use and kept for the
    /// life of the process.
    func method(_ path: String) -> Method {
        methods.withLock { methods in
            if let method = methods[path] { return method }
            let method = Method(path: path)
            methods[path] = method
            return method
        }
    }

    /// The counts of one method, summed over the thread slots.
    struct Totals: Equatable, Sendable {
        /// Calls answered, by status code number (0...16).
        var calls: [UInt64]
        /// Calls per bucket, not cumulative; the last counts those above
        /// the largest bound.
        var buckets: [UInt64]
        /// Summed duration in nanoseconds.
        var nanoseconds: UInt64

        var count: UInt64 { calls.reduce(0, &+) }
    }

    /// The two families in the Prometheus text format, methods sorted by
    /// path. OK is always written (as the eager swift-metrics counter was);
    /// other codes once they have been answered.
    func render() -> String {
        let methods = methods.withLock { $0 }.sorted { $0.key < $1.key }.map(\.value)
        let totals = methods.map { $0.totals() }
        var text = "# TYPE \(RPCMetrics.requests) counter\n"
        for (method, totals) in zip(methods, totals) {
            for code in 0..<Method.codes where code == 0 || totals.calls[code] > 0 {
                text += "\(RPCMetrics.requests){method=\"\(method.label)\",code=\"\(Code(rawValue: code))\"} "
                text += "\(totals.calls[code])\n"
            }
        }
        text += "# TYPE \(RPCMetrics.duration) histogram\n"
        for (method, totals) in zip(methods, totals) {
            var cumulative: UInt64 = 0
            for (index, bound) in Self.bucketBounds.enumerated() {
                cumulative &+= totals.buckets[index]
                text += "\(RPCMetrics.duration)_bucket{method=\"\(method.label)\",le=\"\(bound.bucketRepresentation)\"} "
                text += "\(cumulative)\n"
            }
            let count = totals.count
            text += "\(RPCMetrics.duration)_bucket{method=\"\(method.label)\",le=\"+Inf\"} \(count)\n"
            let sum = Duration.nanoseconds(Int64(clamping: totals.nanoseconds))
            text += "\(RPCMetrics.duration)_sum{method=\"\(method.label)\"} \(sum.bucketRepresentation)\n"
            text += "\(RPCMetrics.duration)_count{method=\"\(method.label)\"} \(count)\n"
        }
        return text
    }

    /// One method's cells: `slots` rows of `width` atomics, each row on its
    /// own cache lines.
    final class Method: @unchecked Sendable {
        // @unchecked: `cells` is written only through atomics, allocated in
        // init and freed in deinit.
        static let codes = 17
        static let buckets = RPCCallCounters.bucketBounds.count + 1
        /// Calls by code, then buckets, then the sum; rounded up to whole
        /// 64-byte lines.
        static let width = (codes + buckets + 1 + 7) / 8 * 8
        static let slots = 16

        let path: String
        /// The path as a Prometheus label value.
        let label: String
        private let bounds: [Int64] = RPCCallCounters.bucketBounds.map { Int64($0.components.seconds) * 1_000_000_000 + $0.components.attoseconds / 1_000_000_000 }
        private let cells: UnsafeMutablePointer<Atomic<UInt64>>

        init(path: String) {
            self.path = path
            label = Self.escaped(path)
            let count = Self.slots * Self.width
            let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<UInt64>.stride, alignment: 64)
            cells = raw.bindMemory(to: Atomic<UInt64>.self, capacity: count)
            for index in 0..<count { (cells + index).initialize(to: Atomic(0)) }
        }

        deinit {
            cells.deinitialize(count: Self.slots * Self.width)
            UnsafeMutableRawPointer(cells).deallocate()
        }

        /// Counts one answered call with the given code and duration.
        func record(code: Int, nanoseconds: Int64) {
            let row = cells + ThreadSlot.current * Self.width
            row[code].wrappingAdd(1, ordering: .relaxed)
            var bucket = 0
            while bucket < bounds.count, bounds[bucket] < nanoseconds { bucket += 1 }
            row[Self.codes + bucket].wrappingAdd(1, ordering: .relaxed)
            row[Self.codes + Self.buckets].wrappingAdd(UInt64(clamping: nanoseconds), ordering: .relaxed)
        }

        /// The counts summed over every slot.
        func totals() -> Totals {
            var totals = Totals(
                calls: Array(repeating: 0, count: Self.codes), buckets: Array(repeating: 0, count: Self.buckets),
                nanoseconds: 0)
            for slot in 0..<Self.slots {
                let row = cells + slot * Self.width
                for code in 0..<Self.codes { totals.calls[code] &+= row[code].load(ordering: .relaxed) }
                for bucket in 0..<Self.buckets {
                    totals.buckets[bucket] &+= row[Self.codes + bucket].load(ordering: .relaxed)
                }
                totals.nanoseconds &+= row[Self.codes + Self.buckets].load(ordering: .relaxed)
            }
            return totals
        }

        /// Escapes a label value as the text format requires.
        static func escaped(_ value: String) -> String {
            var escaped = ""
            for character in value {
                switch character {
                case "\\": escaped += "\\\\"
                case "\"": escaped += "\\\""
                case "\n": escaped += "\\n"
                default: escaped.append(character)
                }
            }
            return escaped
        }
    }

    /// Nanoseconds on the monotonic clock, for call durations.
    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}

/// The slot of the calling thread: handed out round robin on a thread's
/// first call and kept in a thread-specific value. Two event loops get two
/// slots; if more threads than slots record, some share one, which stays
/// correct (the cells are atomic) and costs only contention.
private enum ThreadSlot {
    static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()
    static let next = Atomic<Int>(0)

    static var current: Int {
        if let value = pthread_getspecific(key) { return Int(bitPattern: value) &- 1 }
        let slot = next.wrappingAdd(1, ordering: .relaxed).oldValue % RPCCallCounters.Method.slots
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: slot &+ 1))
        return slot
    }
}
