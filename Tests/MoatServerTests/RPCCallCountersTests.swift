import CoreMetrics
import Foundation
import MoatRPC
import Prometheus
import XCTest

@testable import MoatServer

/// The RPC families moatd keeps itself (per-thread atomic rows, summed at
/// scrape) read exactly as swift-prometheus writes them.
final class RPCCallCountersTests: XCTestCase {
    private let path = "/moat.v1.Sessions/Validate"

    /// Durations on, under and over the bucket bounds, including 0 and
    /// beyond the largest bound.
    private var samples: [(code: Int, nanoseconds: Int64)] {
        var samples: [(Int, Int64)] = [(0, 0), (0, 49_999), (0, 50_000), (0, 50_001), (16, 100_000), (0, 10_000_000_000),
            (0, 10_000_000_001), (14, 73_123_456_789), (16, 2_500_000)]
        for index in 0..<200 { samples.append((index % 7 == 0 ? 3 : 0, Int64(index) * 61_337)) }
        return samples
    }

    func testRenderedTextIsWhatAPrometheusCounterAndHistogramWrite() {
        let counters = RPCCallCounters()
        let method = counters.method(path)
        var factory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
        factory.defaultDurationHistogramBuckets = RPCCallCounters.bucketBounds
        let registry = factory.registry
        let timer = factory.makeTimer(label: RPCMetrics.duration, dimensions: [("method", path)])
        var byCode: [Int: any CounterHandler] = [0: factory.makeCounter(label: RPCMetrics.requests, dimensions: [("method", path), ("code", "OK")])]
        for sample in samples {
            method.record(code: sample.code, nanoseconds: sample.nanoseconds)
            timer.recordNanoseconds(sample.nanoseconds)
            let name = "\(MoatRPC.Code(rawValue: sample.code))"
            let counter =
                byCode[sample.code]
                ?? factory.makeCounter(label: RPCMetrics.requests, dimensions: [("method", path), ("code", name)])
            byCode[sample.code] = counter
            counter.increment(by: 1)
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        let expected = String(decoding: buffer, as: UTF8.self).split(separator: "\n").sorted()
        let rendered = counters.render().split(separator: "\n").sorted()
        XCTAssertEqual(rendered, expected)
        XCTAssertEqual(method.totals().count, UInt64(samples.count))
    }

    func testAMethodWithNoCallsShowsZeroOKAndAnEmptyHistogram() {
        let counters = RPCCallCounters()
        _ = counters.method(path)
        let text = counters.render()
        XCTAssertTrue(text.contains("moat_rpc_requests_total{method=\"\(path)\",code=\"OK\"} 0\n"), text)
        XCTAssertFalse(text.contains("code=\"UNAUTHENTICATED\""), text)
        XCTAssertTrue(text.contains("moat_rpc_request_duration_seconds_count{method=\"\(path)\"} 0\n"), text)
        XCTAssertIdentical(counters.method(path), counters.method(path))
    }

    /// Many threads, some sharing a slot: every call is counted once.
    func testConcurrentRecordsFromManyThreadsAreExact() {
        let counters = RPCCallCounters()
        let method = counters.method(path)
        let threads = 24
        let calls = 21_000
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for call in 0..<calls {
                method.record(code: thread % 2 == 0 ? 0 : 16, nanoseconds: Int64(call % 3) * 40_000)
            }
        }
        let totals = method.totals()
        XCTAssertEqual(totals.count, UInt64(threads * calls))
        XCTAssertEqual(totals.calls[0], UInt64(threads / 2 * calls))
        XCTAssertEqual(totals.calls[16], UInt64(threads / 2 * calls))
        // call % 3: 0 and 40 µs land in the 50 µs bucket, 80 µs in 100 µs.
        let perThird = UInt64(threads) * UInt64(calls) / 3
        XCTAssertEqual(totals.buckets[0], UInt64(threads * calls) - perThird)
        XCTAssertEqual(totals.buckets[1], perThird)
        XCTAssertEqual(totals.nanoseconds, perThird * 40_000 + perThird * 80_000)
    }

    func testLabelValuesAreEscaped() {
        XCTAssertEqual(RPCCallCounters.Method.escaped(#"a"b\c"# + "\n"), #"a\"b\\c\n"#)
    }
}
