import Foundation
import Metrics
import MoatCore
import MoatStore
import MoatTransport
public import Prometheus
import Synchronization

/// The Prometheus side of moatd's metrics: the registry swift-metrics
/// records into (bootstrapped once per process), and the values read at
/// scrape time (connections, cache, outbox, store queues, the process).
public final class MetricsExporter: Sendable {
    /// The registry every metric of this process lands in.
    public let registry: PrometheusCollectorRegistry
    private let accounts: AccountService
    private let events: EventStream
    private let store: StoreBackend
    private let server = Mutex<UnixSocketServer?>(nil)
    private let seen = Mutex(Seen())

    /// Snapshot counters already reported, so counters move by the delta.
    private struct Seen {
        var cacheHits: UInt64 = 0
        var cacheMisses: UInt64 = 0
        var cacheEvictions: UInt64 = 0
        var sessionLoads: UInt64 = 0
        var sessionLoadJoins: UInt64 = 0
        var consumers: Set<String> = []
    }

    init(registry: PrometheusCollectorRegistry, accounts: AccountService, events: EventStream, store: StoreBackend) {
        self.registry = registry
        self.accounts = accounts
        self.events = events
        self.store = store
    }

    /// The server whose connections are counted (built after the router
    /// that serves the Metrics RPC).
    func attach(server: UnixSocketServer) {
        self.server.withLock { $0 = server }
    }

    /// The registry swift-metrics was bootstrapped with in this process, if
    /// ``bootstrap()`` ran.
    public static var bootstrappedRegistry: PrometheusCollectorRegistry? { state.withLock { $0 } }
    private static let state = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps swift-metrics with a Prometheus registry (once per
    /// process; later calls return the same registry). Call before anything
    /// records, i.e. first thing in `main`.
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        state.withLock { current in
            if let current { return current }
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            // Validate takes tens of microseconds: the default buckets
            // start at 5 ms. The RPC families are RPCCallCounters', which
            // uses the same bounds.
            factory.defaultDurationHistogramBuckets = RPCCallCounters.bucketBounds
            factory.valueHistogramBuckets[StoreMetricNames.batchSize] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
            MetricsSystem.bootstrap(factory)
            current = registry
            return registry
        }
    }

    /// The metrics in the Prometheus text format, after reading the
    /// scrape-time values.
    public func render() async -> String {
        await sample()
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        let text = String(decoding: buffer, as: UTF8.self) + RPCCallCounters.shared.render()
        return Self.addingHelp(to: text)
    }

    /// swift-metrics carries no help text; Prometheus (and `promtool check
    /// metrics`) want one per family: inserted before each `# TYPE` line.
    static func addingHelp(to text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count + 4096)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst(7).prefix { $0 != " " }
                output += "# HELP \(name) \(help[String(name)] ?? "Moat metric \(name).")\n"
            }
            output += line
            output += "\n"
        }
        if output.hasSuffix("\n\n") { output.removeLast() }
        return output
    }

    /// Help text of every family moatd exports.
    static let help: [String: String] = [
        "moat_rpc_requests_total": "RPC calls answered, by method and status code.",
        "moat_rpc_request_duration_seconds": "Time from dispatch to answer, by method.",
        "moat_rpc_calls_in_flight": "Calls dispatched to a handler task and not yet answered.",
        "moat_sign_ins_total": "Users.SignIn outcomes: ok, second_factor_required, wrong_password, locked, refused.",
        "moat_two_factor_verifications_total": "Second-factor checks (CompleteSignIn, Verify, Confirm, Disable, RegenerateRecoveryCodes) by outcome.",
        "moat_connections_open": "Open client connections on the RPC socket.",
        "moat_session_cache_entries": "Sessions held in the Validate cache.",
        "moat_session_cache_hits_total": "Validate calls answered from the cache.",
        "moat_session_cache_misses_total": "Validate calls that had to read the store.",
        "moat_session_cache_evictions_total": "Sessions forgotten because the Validate cache was full.",
        "moat_session_loads_total": "Store reads started by Validate cache misses (one per token and tenant at a time).",
        "moat_session_load_joins_total": "Validate cache misses that waited for a read of the same token already in flight.",
        "moat_password_hash_queue_depth": "Password hashes running or waiting on the hashing threads.",
        "moat_password_hash_duration_seconds": "Time of one password hash on the hashing pool, queue wait included.",
        "moat_password_hash_refused_total": "Password hashes refused because the hashing pool was full (OVERLOADED).",
        "moat_store_queued_writes": "Write transactions waiting for the writer thread.",
        "moat_store_queued_reads": "Reads waiting for a reader connection.",
        "moat_store_commit_duration_seconds": "Wall time of one group-commit batch, BEGIN to COMMIT (fsync included).",
        "moat_store_write_batch_size": "Write bodies committed per batch transaction.",
        "moat_store_read_wait_seconds": "Time a read waited for a reader connection.",
        "moat_events_newest_sequence": "The newest event sequence in the outbox.",
        "moat_event_consumer_lag": "Events between a consumer's cursor and the newest sequence.",
        "moat_purges_total": "Accounts and tenants purged after their grace period.",
        "moat_purges_failed_total": "Purges that failed (retried at the next run).",
        "moat_cluster_fence_current": "1 while this instance has confirmed, within cluster.fence_ms, that it applied every other instance's revocations (PostgreSQL only); 0 while Validate answers from the database.",
        "moat_cluster_fence_age_seconds": "Seconds since this instance last confirmed it is current (PostgreSQL only).",
        "process_resident_memory_bytes": "Resident memory size in bytes.",
        "process_open_fds": "Open file descriptors.",
    ]

    private func sample() async {
        if let server = server.withLock({ $0 }) {
            Gauge(label: "moat_connections_open").record(server.connectionCount)
        }
        let cache = accounts.sessionCache.statistics
        Gauge(label: "moat_session_cache_entries").record(cache.entries)
        let (hits, misses) = seen.withLock { seen -> (UInt64, UInt64) in
            defer { (seen.cacheHits, seen.cacheMisses) = (cache.hits, cache.misses) }
            return (cache.hits &- seen.cacheHits, cache.misses &- seen.cacheMisses)
        }
        Counter(label: "moat_session_cache_hits_total").increment(by: Int64(clamping: hits))
        Counter(label: "moat_session_cache_misses_total").increment(by: Int64(clamping: misses))
        let evictions = accounts.sessionCache.evictions
        let evicted = seen.withLock { seen -> UInt64 in
            defer { seen.cacheEvictions = evictions }
            return evictions &- seen.cacheEvictions
        }
        Counter(label: "moat_session_cache_evictions_total").increment(by: Int64(clamping: evicted))
        let loads = accounts.authority.loadStatistics
        let (started, joined) = seen.withLock { seen -> (UInt64, UInt64) in
            defer { (seen.sessionLoads, seen.sessionLoadJoins) = (loads.loads, loads.joined) }
            return (loads.loads &- seen.sessionLoads, loads.joined &- seen.sessionLoadJoins)
        }
        Counter(label: "moat_session_loads_total").increment(by: Int64(clamping: started))
        Counter(label: "moat_session_load_joins_total").increment(by: Int64(clamping: joined))

        // The writer and reader queues are the SQLite store's; PostgreSQL's
        // pool has neither, so those gauges are left out there.
        if case .sqlite(let sqlite) = store {
            let queues = sqlite.database.metrics
            Gauge(label: "moat_store_queued_writes").record(queues.queuedWrites)
            Gauge(label: "moat_store_queued_reads").record(queues.queuedReads)
        }

        if let (consumers, newest) = try? await events.consumers() {
            Gauge(label: "moat_events_newest_sequence").record(newest)
            let names = Set(consumers.map(\.consumer.name))
            for status in consumers {
                Gauge(label: "moat_event_consumer_lag", dimensions: [("consumer", status.consumer.name)])
                    .record(status.lag)
            }
            // A deleted consumer's series goes away.
            let gone = seen.withLock { seen -> Set<String> in
                defer { seen.consumers = names }
                return seen.consumers.subtracting(names)
            }
            for name in gone {
                Gauge(label: "moat_event_consumer_lag", dimensions: [("consumer", name)]).destroy()
            }
        }

        if case .postgres(let postgres) = store, let fence = postgres.validityMarks.fence {
            Gauge(label: "moat_cluster_fence_current").record(fence.isCurrent ? 1 : 0)
            if let age = fence.age {
                let parts = age.components
                Gauge(label: "moat_cluster_fence_age_seconds")
                    .record(Double(parts.seconds) + Double(parts.attoseconds) / 1e18)
            }
        }

        if let rss = Self.residentBytes() { Gauge(label: "process_resident_memory_bytes").record(rss) }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            Gauge(label: "process_open_fds").record(fds.count)
        }
    }

    /// Resident set size from `/proc/self/statm` (pages × page size).
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// Metric names recorded by the store (MoatStore records them; the
/// exporter sets their buckets).
enum StoreMetricNames {
    static let batchSize = "moat_store_write_batch_size"
}

extension MetricsExporter {
    /// Counts one purge run: accounts and tenants purged, purges failed.
    static func recordPurges(_ report: PurgeReport) {
        Counter(label: "moat_purges_total", dimensions: [("kind", "account")]).increment(by: report.accounts)
        Counter(label: "moat_purges_total", dimensions: [("kind", "tenant")]).increment(by: report.tenants)
        Counter(label: "moat_purges_failed_total").increment(by: report.failed)
    }
}
