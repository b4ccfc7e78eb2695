import Foundation
import MoatClient
import NIOCore
import Synchronization

/// Tenants, users and sessions created through the public API, and what the
/// scenarios need of them (slugs, credentials, session tokens).
struct SeedSet: Sendable {
    struct User: Sendable {
        var tenant: Int
        var email: String
    }

    struct Session: Sendable {
        var tenant: Int
        var user: Int
        var id: String
        var token: String
    }

    var password: String
    var tenants: [String] = []
    var users: [User] = []
    var sessions: [Session] = []

    // MARK: File (TSV), so one seeding serves several runs

    static let header = "# moat-bench seeds v1"

    func write(to path: String) throws {
        var text = Self.header + "\n"
        text.reserveCapacity(64 + sessions.count * 110 + users.count * 50)
        text += "P\t\(password)\n"
        for slug in tenants { text += "T\t\(slug)\n" }
        for user in users { text += "U\t\(user.tenant)\t\(user.email)\n" }
        for session in sessions { text += "S\t\(session.tenant)\t\(session.user)\t\(session.id)\t\(session.token)\n" }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func read(from path: String) throws -> SeedSet {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)[...]
        guard lines.first.map(String.init) == header else { throw BenchError("\(path) is not a moat-bench seed file") }
        lines = lines.dropFirst()
        var seeds = SeedSet(password: "")
        for line in lines {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            switch fields.first {
            case "P" where fields.count == 2: seeds.password = String(fields[1])
            case "T" where fields.count == 2: seeds.tenants.append(String(fields[1]))
            case "U" where fields.count == 3:
                seeds.users.append(User(tenant: Int(fields[1]) ?? 0, email: String(fields[2])))
            case "S" where fields.count == 5:
                seeds.sessions.append(
                    Session(
                        tenant: Int(fields[1]) ?? 0, user: Int(fields[2]) ?? 0, id: String(fields[3]),
                        token: String(fields[4])))
            default: throw BenchError("\(path): unreadable line: \(line.prefix(40))")
            }
        }
        return seeds
    }
}

/// Hands out job indexes to every connection of a seeding run.
final class JobSource: Sendable {
    private let nextJob = Atomic<Int>(0)
    let count: Int
    init(count: Int) { self.count = count }

    func take() -> Int? {
        let job = nextJob.add(1, ordering: .relaxed).oldValue
        return job < count ? job : nil
    }
}

/// Runs a list of calls as fast as the shape allows, retrying the ones the
/// daemon refused as overloaded, and keeping each answer's payload.
final class JobWorkload: Workload, @unchecked Sendable {
    let source: JobSource
    let request: @Sendable (Int) -> RequestTemplate
    private var retries: [Int] = []
    /// job -> response payload, for the successful ones.
    var results: [(Int, [UInt8])] = []
    var failed: [Int: ErrorKey] = [:]
    var retried = 0
    /// A refused call answered after the source ran dry is still sent.
    var hasPendingWork: Bool { !retries.isEmpty }

    init(source: JobSource, request: @escaping @Sendable (Int) -> RequestTemplate) {
        self.source = source
        self.request = request
    }

    func next(id: UInt64, into buffer: inout ByteBuffer) -> (op: Int, tag: Int)? {
        guard let job = retries.popLast() ?? source.take() else { return nil }
        request(job).write(id: id, into: &buffer)
        return (0, job)
    }

    func completed(op: Int, tag: Int, response: ScannedResponse, frame: UnsafeRawBufferPointer) {
        switch response.code {
        case 0:
            results.append((tag, response.payload.map { Array(frame[$0]) } ?? []))
        case 8, 14:  // RESOURCE_EXHAUSTED (OVERLOADED), UNAVAILABLE: try again.
            retried += 1
            retries.append(tag)
        default:
            let reason = response.reason.map { String(decoding: frame[$0], as: UTF8.self) } ?? ""
            failed[tag] = ErrorKey(code: CodeName.name(response.code), reason: reason)
        }
    }
}

/// Creates tenants, users and sessions through the public API.
enum Seeder {
    static let userAgents = [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    ]

    struct Stats: Sendable, Codable {
        var tenants = 0
        var users = 0
        var sessions = 0
        var seconds = 0.0
        var sessionsPerSecond = 0.0
        var retried = 0
        var failed = 0
        /// Seconds spent on the sign-ins alone.
        var sessionSeconds = 0.0
    }

    /// Runs one batch of jobs over `connections` × `inFlight`.
    static func runJobs(
        socketPath: String, count: Int, connections: Int, inFlight: Int, label: String, progress: Bool,
        request: @escaping @Sendable (Int) -> RequestTemplate
    ) async throws -> (results: [Int: [UInt8]], failed: [Int: ErrorKey], retried: Int) {
        guard count > 0 else { return ([:], [:], 0) }
        let source = JobSource(count: count)
        var workloads: [JobWorkload] = []
        var shape = LoadShape()
        shape.connections = max(1, min(connections, count))
        shape.inFlight = inFlight
        shape.duration = nil
        shape.requests = nil
        shape.threads = 1
        shape.drainTimeout = 60
        shape.label = label
        shape.progress = progress
        _ = try await Engine.run(socketPath: socketPath, shape: shape, opNames: ["seed"]) { _ in
            let workload = JobWorkload(source: source, request: request)
            workloads.append(workload)
            return workload
        }
        var results: [Int: [UInt8]] = [:]
        results.reserveCapacity(count)
        var failed: [Int: ErrorKey] = [:]
        var retried = 0
        for workload in workloads {
            for (job, payload) in workload.results { results[job] = payload }
            failed.merge(workload.failed) { a, _ in a }
            retried += workload.retried
        }
        // Every job answered once, or the seed is not what it says.
        let unanswered = count - results.count - failed.count
        if unanswered > 0 { throw BenchError("\(label.trimmingCharacters(in: .whitespaces)): \(unanswered) of \(count) calls got no final answer") }
        return (results, failed, retried)
    }

    /// Seeds `tenants` tenants, `users` members spread over them, and
    /// `sessions` sign-ins spread over the members (or the owners if there
    /// are no members).
    static func seed(
        socketPath: String, tenants tenantCount: Int, users userCount: Int, sessions sessionCount: Int,
        connections: Int = 4, inFlight: Int = 16, progress: Bool = true
    ) async throws -> (SeedSet, Stats) {
        let started = nowNs()
        let run = String(UInt64.random(in: 0..<(1 << 40)), radix: 36)
        let password = "moat-bench seeded password \(run)"
        var seeds = SeedSet(password: password)
        var stats = Stats()
        let tenantCount = max(1, tenantCount)
        let slugs = (0..<tenantCount).map { "bench-\(run)-\($0)" }

        // Tenants (each with an owner).
        let tenantJobs = try await runJobs(
            socketPath: socketPath, count: tenantCount, connections: connections, inFlight: 4,
            label: "seed tenants ", progress: progress
        ) { index in
            let request = Moat_V1_CreateTenantRequest.with {
                $0.slug = slugs[index]
                $0.name = "Bench \(index)"
                $0.ownerEmail = "owner@\(slugs[index]).bench.example"
                $0.ownerPassword = password
            }
            return RequestTemplate(
                method: Moat_V1_Tenants.Method.create.path, payload: (try? request.serializedBytes()) ?? [])
        }
        try check(tenantJobs.failed, what: "tenant")
        seeds.tenants = slugs
        stats.tenants = tenantCount

        // Members, round-robin over the tenants.
        let emails = (0..<userCount).map { "user\($0)@\(slugs[$0 % tenantCount]).bench.example" }
        let userJobs = try await runJobs(
            socketPath: socketPath, count: userCount, connections: connections, inFlight: inFlight,
            label: "seed users   ", progress: progress
        ) { index in
            let request = Moat_V1_CreateUserRequest.with {
                $0.email = emails[index]
                $0.password = password
                $0.role = .member
            }
            return RequestTemplate(
                method: Moat_V1_Users.Method.create.path, tenant: slugs[index % tenantCount],
                payload: (try? request.serializedBytes()) ?? [])
        }
        try check(userJobs.failed, what: "user")
        if userCount > 0 {
            seeds.users = (0..<userCount).map { SeedSet.User(tenant: $0 % tenantCount, email: emails[$0]) }
        } else {
            seeds.users = (0..<tenantCount).map {
                SeedSet.User(tenant: $0, email: "owner@\(slugs[$0]).bench.example")
            }
        }
        stats.users = seeds.users.count

        // Sessions, round-robin over the users.
        let users = seeds.users
        let sessionsStarted = nowNs()
        let sessionJobs = try await runJobs(
            socketPath: socketPath, count: sessionCount, connections: connections, inFlight: inFlight,
            label: "seed sessions ", progress: progress
        ) { index in
            let user = users[index % users.count]
            let request = Moat_V1_SignInRequest.with {
                $0.email = user.email
                $0.password = password
                $0.client.userAgent = userAgents[index % userAgents.count]
                $0.client.ip = "10.\(index >> 16 & 255).\(index >> 8 & 255).\(index & 255)"
                $0.client.location = "Bench City"
            }
            return RequestTemplate(
                method: Moat_V1_Users.Method.signIn.path, tenant: slugs[user.tenant],
                payload: (try? request.serializedBytes()) ?? [])
        }
        try check(sessionJobs.failed, what: "session")
        stats.sessionSeconds = Double(nowNs() - sessionsStarted) / 1e9
        seeds.sessions.reserveCapacity(sessionCount)
        for index in 0..<sessionCount {
            guard let payload = sessionJobs.results[index],
                let response = try? Moat_V1_SignInResponse(serializedBytes: payload)
            else { continue }
            let userIndex = index % users.count
            seeds.sessions.append(
                SeedSet.Session(
                    tenant: users[userIndex].tenant, user: userIndex, id: response.session.id,
                    token: response.sessionToken))
        }
        stats.sessions = seeds.sessions.count
        stats.retried = tenantJobs.retried + userJobs.retried + sessionJobs.retried
        stats.seconds = Double(nowNs() - started) / 1e9
        stats.sessionsPerSecond = Double(stats.sessions) / max(stats.sessionSeconds, 1e-9)
        return (seeds, stats)
    }

    private static func check(_ failed: [Int: ErrorKey], what: String) throws {
        guard let (_, first) = failed.first else { return }
        throw BenchError("\(failed.count) \(what) creation(s) failed, e.g. \(first.code) \(first.reason)")
    }
}
