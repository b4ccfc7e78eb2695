import ArgumentParser
import Foundation
import MoatClient

/// How soon a long poll (`Events.Poll`) returns after the call that caused
/// an event: the poll is waiting, a `Tenants.UpdatePolicy` commits a
/// `tenant.policy_updated` event, the commit wakes the poll.
struct EventLatency: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event-latency",
        abstract: "Time from an event-causing call to the waiting long poll's answer (p50/p99/max).",
        discussion: """
            Each sample: a Poll waits (filtered to this run's tenant and tenant.policy_updated), \
            then --settle-ms later a Tenants.UpdatePolicy is sent on another connection (to another \
            instance with --cause-socket). Reports \
            the poll's answer time measured from the causing call's return and from its send. \
            The poll may answer before the causing call's own answer arrives (both follow the \
            same commit); those samples count as 0 from the return and are reported.
            """)

    @Option(help: "The daemon's socket (default $MOAT_SOCKET or ./moat-data/moat.sock).")
    var socket: String = ProcessInfo.processInfo.environment["MOAT_SOCKET"] ?? "./moat-data/moat.sock"
    @Option(
        help: "Send the causing calls to this socket instead: another moatd on the same PostgreSQL, so the wake-up crosses instances (LISTEN/NOTIFY).")
    var causeSocket: String?
    @Option(help: "Samples to take.") var samples = 200
    @Option(help: "Milliseconds between starting the poll and sending the causing call.") var settleMs = 20
    @Option(help: "Write the results as JSON to this file.") var json: String?

    func validate() throws {
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        guard (1...5000).contains(settleMs) else { throw ValidationError("--settle-ms must be 1 to 5000") }
    }

    func run() async throws {
        let causer = MoatClient(socketPath: causeSocket ?? socket)
        let poller = MoatClient(socketPath: socket)
        let slug = "bench-ev-" + String(UUID().uuidString.prefix(8)).lowercased()
        let consumer = "bench-latency-" + String(UUID().uuidString.prefix(8)).lowercased()
        let created = try await causer.tenants.create(
            .with {
                $0.slug = slug
                $0.name = "Bench events"
                $0.ownerEmail = "owner@bench.example"
                $0.ownerPassword = "bench password \(UUID().uuidString)"
            })
        var poll = Moat_V1_PollRequest()
        poll.consumer = consumer
        poll.maxEvents = 100
        poll.typePrefix = "tenant.policy_updated"
        poll.tenant = created.tenant.id
        // Register and skip what is there.
        var first = poll
        first.waitMs = 0
        let start = try await poller.events.poll(first)
        if start.lastSequenceScanned > 0 { try await ack(poller, consumer, start.lastSequenceScanned) }
        poll.waitMs = 5000
        let pollOptions = CallOptions(timeout: .seconds(10))

        var fromReturn = LatencyHistogram.latency()
        var fromSend = LatencyHistogram.latency()
        var causing = LatencyHistogram.latency()
        var beforeReturn = 0
        var missed = 0
        let clock = ContinuousClock()
        for index in 0..<samples {
            let pending = Task { () -> (Moat_V1_PollResponse, ContinuousClock.Instant) in
                let response = try await poller.events.poll(poll, options: pollOptions)
                return (response, clock.now)
            }
            try await Task.sleep(for: .milliseconds(settleMs))
            let sent = clock.now
            _ = try await causer.tenants.updatePolicy(
                .with {
                    $0.tenant = created.tenant.id
                    $0.maxSessionsPerUser = UInt32(index % 50 + 1)
                })
            let returned = clock.now
            let (response, answered) = try await pending.value
            guard !response.events.isEmpty else {
                missed += 1
                continue
            }
            if answered < returned { beforeReturn += 1 }
            fromReturn.recordClamped(nanoseconds(answered < returned ? .zero : answered - returned))
            fromSend.recordClamped(nanoseconds(answered - sent))
            causing.recordClamped(nanoseconds(returned - sent))
            try await ack(poller, consumer, response.lastSequenceScanned)
        }
        var delete = Moat_V1_DeleteConsumerRequest()
        delete.consumer = consumer
        _ = try? await poller.events.deleteConsumer(delete)
        await poller.close()
        await causer.close()

        func line(_ name: String, _ histogram: LatencyHistogram) -> String {
            String(
                format: "%@ p50=%.3fms p99=%.3fms max=%.3fms", name, histogram.ms(50), histogram.ms(99),
                histogram.maxMs)
        }
        print("event-latency: \(fromReturn.totalCount) samples (tenant \(slug), settle \(settleMs) ms)")
        print(line("poll answer after the causing call returned:", fromReturn))
        print(line("poll answer after the causing call was sent: ", fromSend))
        print(line("causing call (UpdatePolicy) round trip:      ", causing))
        print("poll answered before the causing call's own answer: \(beforeReturn); polls without the event: \(missed)")
        if let json {
            let report: [String: Any] = [
                "samples": fromReturn.totalCount, "missed": missed, "answered_before_return": beforeReturn,
                "from_return_ms": ["p50": fromReturn.ms(50), "p99": fromReturn.ms(99), "max": fromReturn.maxMs],
                "from_send_ms": ["p50": fromSend.ms(50), "p99": fromSend.ms(99), "max": fromSend.maxMs],
                "causing_call_ms": ["p50": causing.ms(50), "p99": causing.ms(99), "max": causing.maxMs],
            ]
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json))
        }
        if missed > 0 { throw ExitCode(2) }
    }

    private func ack(_ client: MoatClient, _ consumer: String, _ sequence: Int64) async throws {
        var request = Moat_V1_AckRequest()
        request.consumer = consumer
        request.sequence = sequence
        _ = try await client.events.ack(request)
    }

    private func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}
