import ArgumentParser
import Foundation
import MoatClient

/// moat-bench: the load-test harness for a running moatd.
@main
struct MoatBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moat-bench",
        abstract: "Load-test a running Moat daemon.",
        discussion: """
            Scenarios: health (transport only), validate (tokens of seeded sessions), signin, mixed \
            (validate, Sessions.List, sign-in, revoke by weight), writes (Users.Create or Users.ChangePassword), \
            call (any method with a payload file). \
            Closed loop by default (--connections × --in-flight calls always outstanding); --rate R is an \
            open loop that schedules R calls/s and measures each call from its scheduled time, so a stalled \
            daemon shows up in the latencies (no coordinated omission). seed creates tenants, users and \
            sessions through the public API and writes them to a file the other scenarios read (--seeds). \
            store-commit measures MoatStore's group commit on the disk, without a daemon.
            """,
        subcommands: [
            HealthScenario.self, ValidateScenario.self, SignInScenario.self, MixedScenario.self, CallScenario.self,
            SeedCommand.self, SignInBurst.self, EventLatency.self, StoreCommit.self, WriteScenario.self, BulkSeed.self,
        ])
}

enum EngineKind: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Raw NIO connections with hand-encoded envelopes: the lightest client.
    case nio
    /// The public MoatClient (one per connection, tasks per call).
    case moatclient
}

/// The load shape and outputs, shared by every scenario.
struct LoadOptions: ParsableArguments {
    @Option(help: "The daemon's socket (default $MOAT_SOCKET or ./moat-data/moat.sock).")
    var socket: String = ProcessInfo.processInfo.environment["MOAT_SOCKET"] ?? "./moat-data/moat.sock"
    @Option(help: "Connections to the daemon.") var connections = 1
    @Option(name: .customLong("in-flight"), help: "Calls in flight per connection.") var inFlight = 1
    @Option(help: "Measured seconds (default 10 unless --requests).") var duration: Double?
    @Option(help: "Measured calls in total, instead of a duration.") var requests: Int?
    @Option(help: "Seconds of load before measuring (not counted).") var warmup: Double = 1
    @Option(help: "Open loop: calls per second in total, latency from the scheduled send time.") var rate: Double?
    @Option(help: "Client event-loop threads (default 1: the client must stay out of the daemon's way).")
    var threads: Int = 1
    @Option(help: "Client: nio (hand-encoded frames, the lightest) or moatclient (the public Swift client).")
    var engine: EngineKind = .nio
    @Option(help: "Write everything measured as JSON to this file.") var json: String?
    @Option(help: "Draw latency over time and the latency distribution into this SVG file.") var svg: String?
    @Option(help: "Exit with status 2 if the error rate (0...1) is above this.") var maxErrorRate: Double = 0
    @Option(help: "Seconds to wait for outstanding answers at the end before counting them lost.")
    var drainTimeout: Double = 10
    @Option(help: "A note printed with the results and stored in the JSON (repeatable).") var note: [String] = []
    @Option(help: "moatd's pid, to report the daemon's CPU time per call next to the client's.") var daemonPid: Int32?
    @Flag(help: "No progress line.") var quiet = false

    func validate() throws {
        guard connections >= 1, inFlight >= 1, threads >= 1 else {
            throw ValidationError("--connections, --in-flight and --threads must be at least 1")
        }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        if rate != nil, engine == .moatclient { throw ValidationError("--rate needs --engine nio") }
        if let requests, requests < 1 { throw ValidationError("--requests must be at least 1") }
    }

    var shape: LoadShape {
        var shape = LoadShape()
        shape.connections = connections
        shape.inFlight = inFlight
        shape.requests = requests
        shape.duration = requests == nil ? (duration ?? 10) : nil
        shape.warmup = warmup
        shape.rate = rate
        shape.threads = min(threads, connections)
        shape.drainTimeout = drainTimeout
        shape.progress = !quiet
        return shape
    }

    var loadConfig: LoadConfig {
        let shape = self.shape
        return LoadConfig(
            connections: shape.connections, inFlightPerConnection: shape.inFlight, threads: shape.threads,
            mode: shape.isOpenLoop ? "open" : "closed", rate: shape.rate, durationSeconds: shape.duration,
            requests: shape.requests, warmupSeconds: shape.warmup, engine: engine.rawValue)
    }
}

/// Where the seeded data comes from.
struct SeedOptions: ParsableArguments {
    @Option(help: "Read seeds written by `moat-bench seed --out FILE`.") var seeds: String?
    @Option(help: "Tenants to create (each gets an owner).") var seedTenants = 1
    @Option(help: "Member users to create, spread over the tenants.") var seedUsers = 0
    @Option(help: "Sessions to create by signing in, spread over the users.") var seedSessions = 0
    @Option(help: "Also write the seeds created here to this file.") var saveSeeds: String?
    @Option(help: "Connections used for seeding and priming.") var seedConnections = 4
    @Option(help: "Calls in flight per seeding connection.") var seedInFlight = 16
    @Flag(help: "Do not validate every seeded token once before the run (measure a cold session cache).")
    var noPrime = false

    var wantsSeeding: Bool { seedSessions > 0 || seedUsers > 0 }

    func load(socket: String, quiet: Bool) async throws -> (SeedSet, Seeder.Stats?)? {
        if let seeds, !wantsSeeding {
            let set = try SeedSet.read(from: seeds)
            log("read \(set.tenants.count) tenant(s), \(set.users.count) user(s), \(set.sessions.count) session(s) from \(seeds)")
            return (set, nil)
        }
        guard wantsSeeding else { return nil }
        let (set, stats) = try await Seeder.seed(
            socketPath: socket, tenants: seedTenants, users: seedUsers, sessions: seedSessions,
            connections: seedConnections, inFlight: seedInFlight, progress: !quiet)
        log(
            String(
                format: "seeded %d tenant(s), %d user(s), %d session(s) in %.1f s (%.0f sessions/s, %d retried as overloaded)",
                stats.tenants, stats.users, stats.sessions, stats.seconds, stats.sessionsPerSecond, stats.retried))
        if let path = saveSeeds ?? seeds {
            try set.write(to: path)
            log("wrote the seeds to \(path)")
        }
        return (set, stats)
    }
}

func log(_ message: String) {
    FileHandle.standardError.write(Data(("moat-bench: " + message + "\n").utf8))
}

/// What each scenario hands to the common runner.
struct ScenarioPlan {
    var name: String
    var opNames: [String]
    var notes: [String] = []
    var requestFrameBytes: Int?
    var seeding: Seeder.Stats?
    var priming: PrimingStats?
    var makeWorkload: (Int) -> any Workload
    /// For --engine moatclient.
    var makeSource: ((Int, Int) -> any ClientEngine.CallSource)?
}

enum Runner {
    static func run(_ plan: ScenarioPlan, options: LoadOptions, machine: Machine, startedAt: Date) async throws {
        var shape = options.shape
        shape.label = ""
        log("\(plan.name): \(shape.describe) on \(options.socket)")
        let clientBefore = CPUTime.ofSelf()
        let daemonBefore = options.daemonPid.flatMap(CPUTime.of(pid:))
        var result: RunResult
        switch options.engine {
        case .nio:
            result = try await Engine.run(
                socketPath: options.socket, shape: shape, opNames: plan.opNames, makeWorkload: plan.makeWorkload)
        case .moatclient:
            guard let makeSource = plan.makeSource else {
                throw ValidationError("--engine moatclient supports health, validate and call")
            }
            result = try await ClientEngine.run(
                socketPath: options.socket, shape: shape, opNames: plan.opNames, makeSource: makeSource)
        }
        let calls = Double(result.totals.all.ok + result.totals.all.errors + result.totals.warmupCalls)
        result.cpu = CPUUse(
            clientSeconds: CPUTime.ofSelf() - clientBefore,
            daemonSeconds: daemonBefore.flatMap { before in options.daemonPid.flatMap(CPUTime.of(pid:)).map { $0 - before } },
            calls: calls, wallSeconds: result.wallSeconds)
        let report = Report(
            scenario: plan.name, notes: options.note + plan.notes, socket: options.socket, machine: machine,
            load: options.loadConfig, requestFrameBytes: plan.requestFrameBytes, seeding: plan.seeding,
            priming: plan.priming, run: result, opNames: plan.opNames, maxErrorRate: options.maxErrorRate,
            startedAt: startedAt)
        print(report.table())
        if let path = options.json {
            try report.writeJSON(to: path)
            log("wrote \(path)")
        }
        if let path = options.svg {
            try SVGChart.render(report).write(toFile: path, atomically: true, encoding: .utf8)
            log("wrote \(path)")
        }
        if !report.passed { throw ExitCode(2) }
    }

    /// Validates every seeded token once, so the measured run sees the warm
    /// cache a long-running daemon has.
    static func prime(_ requests: SessionRequests, options: LoadOptions, seedOptions: SeedOptions) async throws
        -> PrimingStats
    {
        var shape = LoadShape()
        shape.connections = max(1, min(seedOptions.seedConnections, requests.validate.count))
        shape.inFlight = max(1, seedOptions.seedInFlight)
        shape.requests = requests.validate.count
        shape.duration = nil
        shape.threads = 1
        shape.progress = !options.quiet
        shape.label = "prime "
        let connections = shape.connections
        let result = try await Engine.run(socketPath: options.socket, shape: shape, opNames: ["validate"]) {
            ValidateWorkload(requests: requests, connection: $0, connections: connections, random: false)
        }
        let all = result.totals.all
        let stats = PrimingStats(calls: all.ok + all.errors, errors: all.errors, seconds: result.wallSeconds)
        log(
            String(
                format: "primed the session cache: %llu Validate calls in %.1f s, %llu errors", stats.calls, stats.seconds,
                stats.errors))
        if let (key, _) = result.totals.errors.first {
            throw BenchError("priming failed: \(all.errors) Validate calls answered \(key.code) \(key.reason)")
        }
        return stats
    }
}

// MARK: Scenarios

struct HealthScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health", abstract: "Health.Check: the transport and RPC runtime alone.")
    @OptionGroup var load: LoadOptions

    func run() async throws {
        let machine = Machine.current()
        let started = Date()
        let template = RequestTemplate(method: Moat_V1_Health.Method.check.path)
        let plan = ScenarioPlan(
            name: "health", opNames: ["health"], requestFrameBytes: template.frameSize(),
            makeWorkload: { _ in FixedWorkload(template) },
            makeSource: { connection, task in
                ClientCalls([(Moat_V1_Health.Method.check, Data(), CallOptions())], start: 0)
            })
        try await Runner.run(plan, options: load, machine: machine, startedAt: started)
    }
}

struct ValidateScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Sessions.Validate with the tokens of seeded sessions (in turn, or --random).")
    @OptionGroup var load: LoadOptions
    @OptionGroup var seedOptions: SeedOptions
    @Flag(help: "Pick tokens at random instead of in turn.") var random = false

    func run() async throws {
        let machine = Machine.current()
        let started = Date()
        guard let (seeds, seeding) = try await seedOptions.load(socket: load.socket, quiet: load.quiet),
            !seeds.sessions.isEmpty
        else {
            throw ValidationError("validate needs sessions: --seed-sessions N (and --seed-users) or --seeds FILE")
        }
        let requests = SessionRequests(seeds: seeds, needList: false, needSignIn: false)
        var priming: PrimingStats?
        if !seedOptions.noPrime { priming = try await Runner.prime(requests, options: load, seedOptions: seedOptions) }
        let connections = load.connections
        let random = self.random
        let calls = seeds.sessions.map { session in
            (
                Moat_V1_Sessions.Method.validate, (try? Moat_V1_ValidateRequest.with { $0.token = session.token }.serializedData()) ?? Data(),
                CallOptions(tenant: seeds.tenants[session.tenant])
            )
        }
        let plan = ScenarioPlan(
            name: "validate", opNames: ["validate"],
            notes: ["\(seeds.sessions.count) seeded sessions, tokens \(random ? "at random" : "in turn")"]
                + (seedOptions.noPrime ? ["--no-prime: the session cache is as earlier calls left it"] : []),
            requestFrameBytes: requests.validate.first?.frameSize(), seeding: seeding, priming: priming,
            makeWorkload: { ValidateWorkload(requests: requests, connection: $0, connections: connections, random: random) },
            makeSource: { connection, task in
                ClientCalls(calls, start: calls.count * (connection * 131 + task) / max(1, connections * 131))
            })
        try await Runner.run(plan, options: load, machine: machine, startedAt: started)
    }
}

struct SignInScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signin",
        abstract: "Users.SignIn as random seeded users (the daemon's Argon2id parameters set the cost).")
    @OptionGroup var load: LoadOptions
    @OptionGroup var seedOptions: SeedOptions

    func run() async throws {
        let machine = Machine.current()
        let started = Date()
        var seedOptions = self.seedOptions
        if seedOptions.seeds == nil, !seedOptions.wantsSeeding { seedOptions.seedUsers = 100 }
        guard let (seeds, seeding) = try await seedOptions.load(socket: load.socket, quiet: load.quiet),
            !seeds.users.isEmpty
        else { throw ValidationError("signin needs users: --seed-users N or --seeds FILE") }
        let requests = SessionRequests(seeds: seeds, needList: false, needSignIn: true)
        let plan = ScenarioPlan(
            name: "signin", opNames: ["signin"],
            notes: ["\(seeds.users.count) users; every sign-in creates a session (left behind)"],
            requestFrameBytes: requests.signIn.first?.frameSize(), seeding: seeding,
            makeWorkload: { SignInWorkload(requests: requests, connection: $0) })
        try await Runner.run(plan, options: load, machine: machine, startedAt: started)
    }
}

struct MixedScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mixed",
        abstract: "A blend by weight: Validate, Sessions.List, SignIn, Sessions.Revoke (of sessions the run signed in), TwoFactor.Verify.",
        discussion: """
            Revoke ends a session this run signed in (never a seeded one); with none to revoke yet, the call \
            is a sign-in instead. A revocation drops that user's cached sessions, as in production, so their \
            next Validate goes to the store.

            With --two-factor-weight > 0, --two-factor-users seeded users enrol 2FA first (through the \
            public API), and 2fa-verify calls TwoFactor.Verify with a fresh TOTP code. Replay protection \
            accepts each time step once per user, so each user verifies at most once per 30 s once its \
            first steps are spent; when every 2FA user of a connection has spent its steps the call is a \
            Validate instead (the table's counts show how many verifies ran). Those users' sign-ins then \
            answer with a 2FA challenge, as in production.
            """)
    @OptionGroup var load: LoadOptions
    @OptionGroup var seedOptions: SeedOptions
    @Option(help: "Weight of Sessions.Validate.") var validateWeight = 90
    @Option(help: "Weight of Sessions.List (as a seeded session).") var listWeight = 5
    @Option(help: "Weight of Users.SignIn.") var signinWeight = 3
    @Option(help: "Weight of Sessions.Revoke.") var revokeWeight = 2
    @Option(help: "Weight of TwoFactor.Verify.") var twoFactorWeight = 0
    @Option(help: "Seeded users that enrol 2FA for TwoFactor.Verify (with --two-factor-weight).") var twoFactorUsers = 300

    func run() async throws {
        let machine = Machine.current()
        let started = Date()
        let weights = MixWeights(
            validate: validateWeight, list: listWeight, signIn: signinWeight, revoke: revokeWeight,
            twoFactorVerify: twoFactorWeight)
        guard weights.values.allSatisfy({ $0 >= 0 }), weights.values.reduce(0, +) > 0 else {
            throw ValidationError("weights must be non-negative and not all zero")
        }
        guard let (seeds, seeding) = try await seedOptions.load(socket: load.socket, quiet: load.quiet),
            !seeds.sessions.isEmpty
        else {
            throw ValidationError("mixed needs sessions: --seed-sessions N (and --seed-users) or --seeds FILE")
        }
        let requests = SessionRequests(seeds: seeds, needList: true, needSignIn: true)
        let twoFactorSeeds =
            twoFactorWeight > 0
            ? try await TwoFactorSeeding.enroll(
                count: twoFactorUsers, seeds: seeds, socket: load.socket, quiet: load.quiet) : []
        var priming: PrimingStats?
        if !seedOptions.noPrime { priming = try await Runner.prime(requests, options: load, seedOptions: seedOptions) }
        let connections = load.connections
        let plan = ScenarioPlan(
            name: "mixed", opNames: MixWeights.opNames,
            notes: [
                "weights validate \(validateWeight), list \(listWeight), signin \(signinWeight), revoke \(revokeWeight), 2fa-verify \(twoFactorWeight); \(seeds.sessions.count) seeded sessions, \(twoFactorSeeds.count) with 2FA"
            ],
            seeding: seeding, priming: priming,
            makeWorkload: {
                MixedWorkload(
                    requests: requests, seeds: seeds, weights: weights, twoFactorUsers: twoFactorSeeds, connection: $0,
                    connections: connections)
            })
        try await Runner.run(plan, options: load, machine: machine, startedAt: started)
    }
}

struct CallScenario: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call", abstract: "Any single method, with a binary payload file (the encoded request message).")
    @OptionGroup var load: LoadOptions
    @Argument(help: "The method: /moat.v1.Health/Check, moat.v1.Users/Get or Users/Get.") var method: String
    @Option(help: "File holding the encoded request message (default: empty).") var payload: String?
    @Option(help: "The tenant (slug or id) for the envelope.") var tenant = ""
    @Option(help: "A session token for user methods.") var authorization = ""
    @Option(help: "Per-call deadline sent to the daemon, in ms (0: the daemon's default).") var timeoutMs: UInt32 = 0

    func run() async throws {
        let machine = Machine.current()
        let started = Date()
        let path = normalizedMethodPath(method)
        let bytes = try payload.map { try [UInt8](Data(contentsOf: URL(fileURLWithPath: $0))) } ?? []
        let template = RequestTemplate(
            method: path, tenant: tenant, authorization: authorization, payload: bytes, timeoutMs: timeoutMs)
        let parts = path.dropFirst().split(separator: "/")
        let descriptor = MethodDescriptor(
            service: String(parts.first ?? ""), method: String(parts.dropFirst().first ?? ""), access: .public)
        let options = CallOptions(
            tenant: tenant, authorization: authorization,
            timeout: timeoutMs == 0 ? nil : .milliseconds(Int(timeoutMs)))
        let data = Data(bytes)
        let plan = ScenarioPlan(
            name: "call \(path)", opNames: [path],
            notes: ["payload \(bytes.count) bytes\(payload.map { " from \($0)" } ?? "")"],
            requestFrameBytes: template.frameSize(),
            makeWorkload: { _ in FixedWorkload(template) },
            makeSource: { _, _ in ClientCalls([(descriptor, data, options)], start: 0) })
        try await Runner.run(plan, options: load, machine: machine, startedAt: started)
    }
}

struct SeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "Create tenants, users and sessions through the public API and write them to a file.",
        discussion: """
            Sign-ins cost what the daemon's Argon2id parameters make them cost. For large seeds, start a \
            benchmark-only daemon with cheap hashing (--set hashing.memory_kib=8 --set hashing.iterations=1 --set hashing.allow_weak=true): \
            never for production, and say so next to any number measured with it.
            """)
    @Option(help: "The daemon's socket (default $MOAT_SOCKET or ./moat-data/moat.sock).")
    var socket: String = ProcessInfo.processInfo.environment["MOAT_SOCKET"] ?? "./moat-data/moat.sock"
    @Option(help: "Tenants to create (each gets an owner).") var tenants = 1
    @Option(help: "Member users to create, spread over the tenants.") var users = 100
    @Option(help: "Sessions to create by signing in, spread over the users.") var sessions = 1000
    @Option(help: "Connections.") var connections = 4
    @Option(name: .customLong("in-flight"), help: "Calls in flight per connection.") var inFlight = 16
    @Option(help: "Write the seeds here.") var out: String
    @Option(help: "Write the seeding statistics as JSON here.") var json: String?
    @Flag(help: "No progress line.") var quiet = false

    func run() async throws {
        let (set, stats) = try await Seeder.seed(
            socketPath: socket, tenants: tenants, users: users, sessions: sessions, connections: connections,
            inFlight: inFlight, progress: !quiet)
        try set.write(to: out)
        print(
            String(
                format: "seeded %d tenant(s), %d user(s), %d session(s) in %.1f s (%.0f sessions/s, %d retried as overloaded) -> %@",
                stats.tenants, stats.users, stats.sessions, stats.seconds, stats.sessionsPerSecond, stats.retried, out))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(stats).write(to: URL(fileURLWithPath: json))
        }
    }
}

/// CPU time of a process (user + system), in seconds.
enum CPUTime {
    static func ofSelf() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
    }

    static func of(pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Fields after "comm)": state is field 3; utime and stime are 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
