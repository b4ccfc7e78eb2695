import Foundation
import Histogram

/// Latency percentiles in milliseconds.
struct Percentiles: Codable, Sendable {
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double
    var min: Double
    var mean: Double

    init(_ histogram: LatencyHistogram) {
        p50 = histogram.ms(50)
        p90 = histogram.ms(90)
        p99 = histogram.ms(99)
        p999 = histogram.ms(99.9)
        max = histogram.maxMs
        min = histogram.totalCount == 0 ? 0 : Double(histogram.min) / 1e6
        mean = histogram.totalCount == 0 ? 0 : histogram.mean / 1e6
    }
}

struct Summary: Codable, Sendable {
    var calls: UInt64
    var ok: UInt64
    var errors: UInt64
    var errorRate: Double
    var callsPerSecond: Double
    var latencyMs: Percentiles

    init(_ stats: OpStats, seconds: Double) {
        calls = stats.ok + stats.errors
        ok = stats.ok
        errors = stats.errors
        errorRate = calls == 0 ? 0 : Double(errors) / Double(calls)
        callsPerSecond = Double(calls) / max(seconds, 1e-9)
        latencyMs = Percentiles(stats.histogram)
    }
}

struct Machine: Codable, Sendable {
    var hostname: String
    var nproc: Int
    var cpu: String
    var kernel: String
    var loadAverageAtStart: [Double]
    var loadAverageAtEnd: [Double]?

    static func current() -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }.map {
                String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces)
            } ?? "unknown"
        let kernel = ((try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return Machine(
            hostname: ProcessInfo.processInfo.hostName, nproc: ProcessInfo.processInfo.activeProcessorCount,
            cpu: model, kernel: kernel, loadAverageAtStart: loadAverage(), loadAverageAtEnd: nil)
    }

    static func loadAverage() -> [Double] {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return text.split(separator: " ").prefix(3).compactMap { Double($0) }
    }
}

struct ErrorCount: Codable, Sendable {
    var code: String
    var reason: String
    var count: UInt64
}

struct DistributionPoint: Codable, Sendable {
    var percentile: Double
    var latencyMs: Double
}

struct LoadConfig: Codable, Sendable {
    var connections: Int
    var inFlightPerConnection: Int
    var threads: Int
    var mode: String
    var rate: Double?
    var durationSeconds: Double?
    var requests: Int?
    var warmupSeconds: Double
    var engine: String
}

struct PrimingStats: Codable, Sendable {
    var calls: UInt64
    var errors: UInt64
    var seconds: Double
}

/// Everything a run measured; `--json` writes it.
struct Report: Codable, Sendable {
    var tool = "moat-bench"
    var scenario: String
    var startedAt: String
    var command: [String]
    var notes: [String]
    var socket: String
    var machine: Machine
    var load: LoadConfig
    var requestFrameBytes: Int?
    /// Mean size of a response frame, length prefix included.
    var responseFrameBytes: Double?
    var seeding: Seeder.Stats?
    var priming: PrimingStats?
    var measuredSeconds: Double
    var wallSeconds: Double
    var cpu: CPUUse?
    var result: Summary
    var ops: [String: Summary]?
    var errors: [ErrorCount]
    var warmupCalls: UInt64
    var timeline: [TimelinePoint]
    var distribution: [DistributionPoint]
    var maxErrorRate: Double
    var passed: Bool

    init(
        scenario: String, notes: [String], socket: String, machine: Machine, load: LoadConfig,
        requestFrameBytes: Int?, seeding: Seeder.Stats?, priming: PrimingStats?, run: RunResult, opNames: [String],
        maxErrorRate: Double, startedAt: Date
    ) {
        self.scenario = scenario
        self.startedAt = ISO8601DateFormatter().string(from: startedAt)
        self.command = CommandLine.arguments
        self.notes = notes
        self.socket = socket
        var machine = machine
        machine.loadAverageAtEnd = Machine.loadAverage()
        self.machine = machine
        self.load = load
        self.requestFrameBytes = requestFrameBytes
        if run.totals.responses > 0 {
            self.responseFrameBytes = Double(run.totals.responseBytes) / Double(run.totals.responses)
        }
        self.seeding = seeding
        self.priming = priming
        self.measuredSeconds = run.measuredSeconds
        self.wallSeconds = run.wallSeconds
        self.cpu = run.cpu
        let all = run.totals.all
        self.result = Summary(all, seconds: run.measuredSeconds)
        if opNames.count > 1 {
            var ops: [String: Summary] = [:]
            for (index, name) in opNames.enumerated() where run.totals.ops[index].ok + run.totals.ops[index].errors > 0 {
                ops[name] = Summary(run.totals.ops[index], seconds: run.measuredSeconds)
            }
            self.ops = ops
        }
        self.errors = run.totals.errors.sorted { $0.value > $1.value }.map {
            ErrorCount(code: $0.key.code, reason: $0.key.reason, count: $0.value)
        }
        self.warmupCalls = run.totals.warmupCalls
        self.timeline = run.timeline
        var distribution: [DistributionPoint] = []
        if all.histogram.totalCount > 0 {
            for point in all.histogram.percentiles(ticksPerHalfDistance: 5) {
                distribution.append(
                    DistributionPoint(percentile: point.percentileLevelIteratedTo, latencyMs: Double(point.value) / 1e6))
                if point.percentileLevelIteratedTo >= 99.9999 { break }
            }
        }
        self.distribution = distribution
        self.maxErrorRate = maxErrorRate
        self.passed = result.errorRate <= maxErrorRate
    }

    func writeJSON(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    // MARK: The table

    static func grouped(_ value: UInt64) -> String {
        let digits = String(value)
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out += "," }
            out.append(character)
        }
        return out
    }

    static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + padding : padding + text
    }

    func table() -> String {
        var lines: [String] = []
        lines.append("moat-bench \(scenario) · \(loadDescription)")
        let loadStart = machine.loadAverageAtStart.map { String(format: "%.2f", $0) }.joined(separator: " ")
        let loadEnd = (machine.loadAverageAtEnd ?? []).map { String(format: "%.2f", $0) }.joined(separator: " ")
        lines.append(
            "machine: \(machine.nproc) CPU \(machine.cpu), load average \(loadStart) at start, \(loadEnd) at end")
        for note in notes { lines.append("note: \(note)") }
        if let request = requestFrameBytes {
            let response = responseFrameBytes.map { String(format: "%.0f", $0) } ?? "?"
            lines.append("frames: request \(request) bytes, response \(response) bytes (length prefix included)")
        }
        if let seeding {
            lines.append(
                String(
                    format: "seeded %d tenant(s), %d user(s), %d session(s) in %.1f s (%.0f sessions/s, %d retried)",
                    seeding.tenants, seeding.users, seeding.sessions, seeding.seconds, seeding.sessionsPerSecond,
                    seeding.retried))
        }
        if let priming {
            lines.append(
                String(
                    format: "primed the daemon's session cache: %@ Validate calls in %.1f s, %@ errors",
                    Self.grouped(priming.calls), priming.seconds, Self.grouped(priming.errors)))
        }
        lines.append("")
        let names = (ops.map { Array($0.keys) } ?? []) + [scenario, "all"]
        let nameWidth = max(12, (names.map(\.count).max() ?? 0) + 2)
        let header =
            Self.pad("", nameWidth, left: true) + Self.pad("calls", 12) + Self.pad("calls/s", 12) + Self.pad("errors", 9)
            + Self.pad("p50", 9) + Self.pad("p90", 9) + Self.pad("p99", 9) + Self.pad("p99.9", 9) + Self.pad("max", 10)
            + "  (ms)"
        lines.append(header)
        func row(_ name: String, _ summary: Summary) -> String {
            let latency = summary.latencyMs
            return Self.pad(name, nameWidth, left: true) + Self.pad(Self.grouped(summary.calls), 12)
                + Self.pad(String(format: "%.0f", summary.callsPerSecond), 12) + Self.pad(Self.grouped(summary.errors), 9)
                + Self.pad(String(format: "%.3f", latency.p50), 9) + Self.pad(String(format: "%.3f", latency.p90), 9)
                + Self.pad(String(format: "%.3f", latency.p99), 9) + Self.pad(String(format: "%.3f", latency.p999), 9)
                + Self.pad(String(format: "%.3f", latency.max), 10)
        }
        if let ops {
            for name in MixWeights.opNames + ops.keys.sorted() where ops[name] != nil {
                if lines.contains(where: { $0.hasPrefix(Self.pad(name, nameWidth, left: true)) }) { continue }
                lines.append(row(name, ops[name]!))
            }
            lines.append(row("all", result))
        } else {
            lines.append(row(scenario, result))
        }
        lines.append("")
        lines.append(
            String(
                format: "measured %.1f s (wall %.1f s, %@ warmup calls not counted); error rate %.4f%% (max %.4f%%): %@",
                measuredSeconds, wallSeconds, Self.grouped(warmupCalls), result.errorRate * 100, maxErrorRate * 100,
                passed ? "ok" : "FAILED"))
        if let cpu {
            var line = String(
                format: "CPU: client %.1f µs/call (%.0f%% of a core)", cpu.clientMicrosPerCall, cpu.clientUtilization * 100)
            if let daemon = cpu.daemonMicrosPerCall, let utilization = cpu.daemonUtilization {
                line += String(format: ", moatd %.1f µs/call (%.0f%% of a core)", daemon, utilization * 100)
            }
            lines.append(line + ", warmup included")
        }
        if !errors.isEmpty {
            lines.append("errors by status and reason:")
            for error in errors {
                lines.append(
                    "  " + Self.pad(error.code, 20, left: true) + Self.pad(error.reason.isEmpty ? "-" : error.reason, 32, left: true)
                        + Self.pad(Self.grouped(error.count), 10))
            }
        }
        return lines.joined(separator: "\n")
    }

    var loadDescription: String {
        var parts = [
            "\(load.connections) connection\(load.connections == 1 ? "" : "s") × \(load.inFlightPerConnection) in flight"
        ]
        if let rate = load.rate {
            parts.append("open loop at \(Int(rate)) calls/s")
        } else {
            parts.append("closed loop")
        }
        if let requests = load.requests {
            parts.append("\(requests) calls")
        } else if let duration = load.durationSeconds {
            parts.append(String(format: "%gs", duration))
        }
        if load.warmupSeconds > 0 { parts.append(String(format: "+%gs warmup", load.warmupSeconds)) }
        parts.append("\(load.threads) client thread\(load.threads == 1 ? "" : "s")")
        if load.engine != "nio" { parts.append("engine \(load.engine)") }
        return parts.joined(separator: ", ")
    }
}
