import Foundation
import MoatCore
import MoatCrypto
import MoatRPC
import MoatServer
import Synchronization

/// Fuzzes every request message into its handler, against an in-memory
/// daemon (memory store, fixed clock, cheap hashing): the router moatd
/// serves (``ServiceRouter``), called the way the transport calls it (fast
/// path first, then the handler).
///
/// Input: one byte picks the method, one the tenant (slug, id, another
/// tenant, none, or bytes from the input), one the authorization (none, a
/// live owner's or member's token, another tenant's, or bytes), one the
/// caller and metadata; the rest is the payload.
///
/// Invariants: no call ends INTERNAL or with an error that is not an
/// `RPCError` (the transport would answer INTERNAL); every call answers
/// (a response or an error) within its deadline.
public final class RequestFuzzer: Sendable {
    /// Calls answered before the daemon's state is rebuilt, so memory stays
    /// bounded over millions of runs.
    public static let runsPerWorld = 2000

    let world = Mutex<(World, Int)?>(nil)

    /// A fuzzer with no world yet (built on the first run).
    public init() {}

    /// Runs one input.
    public func run(_ data: [UInt8]) throws(FuzzViolation) {
        try currentWorld().call(data)
    }

    /// Drops the current world (its store and caches).
    public func shutdown() {
        world.withLock { slot in slot = nil }
    }

    final class World: Sendable {
        let router: Router
        let paths: [String]
        let hasher: PasswordHasher
        let tenants: [String]
        let tokens: [String]

        init(router: Router, hasher: PasswordHasher, tenants: [String], tokens: [String]) {
            self.router = router
            self.paths = router.paths
            self.hasher = hasher
            self.tenants = tenants
            self.tokens = tokens
        }

        static func make() async throws -> World {
            var hashing = HashingConfiguration()
            hashing.parameters = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
            // Hashes inline on the fuzzing thread: no pool to keep or stop.
            let hasher = try PasswordHasher(configuration: hashing, executor: InlineHashingExecutor())
            let store = MemoryAccountStore(encoder: ProtobufEventEncoder())
            let clock = FixedClock()
            let accounts = AccountService(
                store: store, hasher: hasher, clock: clock, deviceFamily: DeviceFamily.parsed)
            var streamConfiguration = EventStreamConfiguration()
            streamConfiguration.maxPollWaitMilliseconds = 0
            let events = EventStream(
                store: store, signal: store.eventSignal, clock: clock, configuration: streamConfiguration)
            let router = try ServiceRouter.make(accounts: accounts, events: events, serving: ServingState())

            let password = "fuzz-owner-pass-4471"
            let (acme, owner) = try await accounts.tenants.createTenant(
                slug: "acme", name: "Acme", ownerEmail: "owner@acme.test", ownerPassword: password)
            _ = try await accounts.users.createUser(
                tenant: acme, actor: .administrator, email: "member@acme.test", password: password, role: .member)
            let (globex, _) = try await accounts.tenants.createTenant(
                slug: "globex", name: "Globex", ownerEmail: "owner@globex.test", ownerPassword: password)
            let client = ClientDetails(userAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0", ip: "192.0.2.1")
            let ownerToken = try await accounts.signIn.signIn(
                tenant: acme, email: owner.email, password: password, client: client
            ).token
            let memberToken = try await accounts.signIn.signIn(
                tenant: acme, email: "member@acme.test", password: password, client: client
            ).token
            let globexToken = try await accounts.signIn.signIn(
                tenant: globex, email: "owner@globex.test", password: password, client: client
            ).token
            return World(
                router: router, hasher: hasher, tenants: ["acme", acme.id.rawValue, "globex", ""],
                tokens: ["", ownerToken, memberToken, globexToken])
        }

        func call(_ data: [UInt8]) throws(FuzzViolation) {
            var input = FuzzInput(data)
            let path = paths[Int(input.byte()) % paths.count]
            let tenantChoice = Int(input.byte())
            let authorizationChoice = Int(input.byte())
            let flags = input.byte()
            let tenant =
                tenantChoice % (tenants.count + 1) < tenants.count
                ? tenants[tenantChoice % (tenants.count + 1)] : String(decoding: input.chunk(limit: 64), as: UTF8.self)
            let authorization =
                authorizationChoice % (tokens.count + 1) < tokens.count
                ? tokens[authorizationChoice % (tokens.count + 1)]
                : String(decoding: input.chunk(limit: 128), as: UTF8.self)
            var metadata: [String: String] = [:]
            if flags & 2 != 0 { metadata["client-ip"] = String(decoding: input.chunk(limit: 64), as: UTF8.self) }
            if flags & 4 != 0 { metadata["user-agent"] = String(decoding: input.chunk(limit: 255), as: UTF8.self) }
            let payload = Data(input.rest)
            let headers = metadata
            let caller = Caller(credentials: PeerCredentials(uid: 1000, gid: 1000, pid: 1), isAdmin: flags & 1 != 0)
            let router = self.router

            do {
                _ = try Blocking.run { () async throws -> Data in
                    let method = try router.resolve(path: path, caller: caller, authorization: authorization)
                    let context = RequestContext(
                        requestID: 1, method: method.descriptor, caller: caller, tenant: tenant,
                        authorization: authorization, metadata: headers,
                        deadline: ContinuousClock.now.advanced(by: .seconds(5)))
                    if let fastPath = method.fastPath, let answer = try fastPath(payload, context) { return answer }
                    return try await method.handler(payload, context)
                }
            } catch {
                // Exactly what the transport answers: the one conversion.
                let rpc = RPCError(answering: error)
                if rpc.code == .internal {
                    throw FuzzViolation(
                        "\(path): INTERNAL \(rpc.reason): \(rpc.message) (\(String(reflecting: type(of: error))))")
                }
            }
        }
    }
}

/// The fixed time of the fuzzed daemon.
struct FixedClock: WallClock {
    func now() -> Timestamp { Timestamp(seconds: 1_750_000_000) }
}

/// Waits, on a thread outside Swift's cooperative pool (libFuzzer's), for
/// an async body.
enum Blocking {
    private final class Box<T: Sendable>: Sendable {
        let result = Mutex<Result<T, any Error>>(.failure(FuzzViolation("the task did not finish")))
        let done = DispatchSemaphore(value: 0)
    }

    static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = Box<T>()
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            box.result.withLock { $0 = result }
            box.done.signal()
        }
        box.done.wait()
        return try box.result.withLock { $0 }.get()
    }
}
