import ArgumentParser
import Foundation
import MoatClient
import MoatCore

/// Latency samples and their percentiles.
struct Samples {
    private(set) var values: [Double] = []

    mutating func add(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        values.append(Double(seconds) * 1e3 + Double(attoseconds) / 1e15)
    }

    mutating func merge(_ other: Samples) { values += other.values }

    var count: Int { values.count }

    /// The p-th percentile in milliseconds.
    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count - 1)).rounded(.up))
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    func summary() -> String {
        String(
            format: "n=%d p50=%.3fms p90=%.3fms p99=%.3fms max=%.3fms", count, percentile(50), percentile(90),
            percentile(99), percentile(100))
    }
}

/// Measures sign-in throughput and latency, and whether a burst of sign-ins
/// slows down session checks (`Sessions.Validate`, the call other services
/// make on every request; no Argon2).
struct SignInBurst: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signin-burst",
        abstract: "Sign-in throughput, and session-check latency idle vs during a sign-in burst.")

    @Option(help: "The daemon's socket.") var socket = "./moat-data/moat.sock"
    @Option(help: "Concurrent sign-in loops during the burst.") var concurrency = 16
    @Option(help: "Seconds per phase.") var seconds = 10
    @Option(help: "Session checks per second from the probe.") var probeRate = 200

    func run() async throws {
        let admin = MoatClient(socketPath: socket)
        let slug = "bench-" + String(UUID().uuidString.prefix(8)).lowercased()
        let password = "bench password \(UUID().uuidString)"
        let created = try await admin.tenants.create(
            .with {
                $0.slug = slug
                $0.name = "Bench"
                $0.ownerEmail = "owner@bench.example"
                $0.ownerPassword = password
            })
        let options = CallOptions(tenant: slug)
        let session = try await admin.users.signIn(
            .with {
                $0.email = "owner@bench.example"
                $0.password = password
            }, options: options)
        print("tenant \(slug) (\(created.tenant.id)); Argon2id parameters are the daemon's")

        let probeClient = MoatClient(socketPath: socket)
        let probeOptions = CallOptions(tenant: slug)
        let token = session.sessionToken

        func probe(for duration: Duration) async throws -> Samples {
            var samples = Samples()
            let interval = Duration.seconds(1) / probeRate
            let clock = ContinuousClock()
            let end = clock.now + duration
            var next = clock.now
            while clock.now < end {
                // Open loop: latency counts from the scheduled time.
                let scheduled = next
                if clock.now < scheduled { try await clock.sleep(until: scheduled) }
                _ = try await probeClient.sessions.validate(.with { $0.token = token }, options: probeOptions)
                samples.add(clock.now - scheduled)
                next = scheduled + interval
            }
            return samples
        }

        let idle = try await probe(for: .seconds(seconds))
        print("session check, idle:          \(idle.summary())")

        let signInClients = (0..<max(1, concurrency / 4)).map { _ in MoatClient(socketPath: socket) }
        let burstEnd = ContinuousClock.now + .seconds(seconds)
        async let burst: (Samples, Int) = withThrowingTaskGroup(of: (Samples, Int).self) { group in
            for index in 0..<concurrency {
                let client = signInClients[index % signInClients.count]
                group.addTask {
                    var samples = Samples()
                    var overloaded = 0
                    while ContinuousClock.now < burstEnd {
                        let start = ContinuousClock.now
                        do {
                            _ = try await client.users.signIn(
                                .with {
                                    $0.email = "owner@bench.example"
                                    $0.password = password
                                }, options: options)
                            samples.add(ContinuousClock.now - start)
                        } catch let error as RPCError where error.reason == DomainError.Reason.overloaded.rawValue {
                            overloaded += 1
                        }
                    }
                    return (samples, overloaded)
                }
            }
            var all = Samples()
            var overloaded = 0
            for try await (samples, refused) in group {
                all.merge(samples)
                overloaded += refused
            }
            return (all, overloaded)
        }
        let during = try await probe(for: .seconds(seconds))
        let (signIns, overloaded) = try await burst
        print("session check, during burst:  \(during.summary())")
        print(
            String(
                format: "sign-in: %.1f/s with %d concurrent (%@), %d refused OVERLOADED", Double(signIns.count) / Double(seconds),
                concurrency, signIns.summary(), overloaded))
        for client in signInClients { await client.close() }
        await probeClient.close()
        await admin.close()
    }
}
