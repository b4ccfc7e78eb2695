import MoatClient
import NIOCore

/// A small fast PRNG (SystemRandomNumberGenerator is a syscall per call).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// The same call again and again (`health`, `call`).
final class FixedWorkload: Workload, @unchecked Sendable {
    let template: RequestTemplate
    init(_ template: RequestTemplate) { self.template = template }

    func next(id: UInt64, into buffer: inout ByteBuffer) -> (op: Int, tag: Int)? {
        template.write(id: id, into: &buffer)
        return (0, 0)
    }
}

/// Prepared requests for the seeded sessions.
final class SessionRequests: Sendable {
    /// Validate requests, one per seeded session.
    let validate: [RequestTemplate]
    /// Sessions.List as each seeded session.
    let list: [RequestTemplate]
    /// SignIn requests, one per seeded user.
    let signIn: [RequestTemplate]
    let tenantSlugs: [[UInt8]]

    init(seeds: SeedSet, needList: Bool, needSignIn: Bool) {
        let tenants = seeds.tenants.map { Array($0.utf8) }
        tenantSlugs = tenants
        let validatePath = Array(Moat_V1_Sessions.Method.validate.path.utf8)
        let listPath = Array(Moat_V1_Sessions.Method.list.path.utf8)
        let signInPath = Array(Moat_V1_Users.Method.signIn.path.utf8)
        validate = seeds.sessions.map { session in
            var payload: [UInt8] = [0x0A]  // ValidateRequest.token = 1
            let token = Array(session.token.utf8)
            payload.append(UInt8(token.count))  // tokens are < 128 bytes
            payload += token
            return RequestTemplate(
                method: validatePath, tenant: tenants[session.tenant], authorization: [], payload: payload)
        }
        list =
            needList
            ? seeds.sessions.map {
                RequestTemplate(
                    method: listPath, tenant: tenants[$0.tenant], authorization: Array($0.token.utf8), payload: [])
            } : []
        signIn =
            needSignIn
            ? seeds.users.enumerated().map { index, user in
                let request = Moat_V1_SignInRequest.with {
                    $0.email = user.email
                    $0.password = seeds.password
                    $0.client.userAgent = Seeder.userAgents[index % Seeder.userAgents.count]
                    $0.client.ip = "192.0.2.\(index % 250 + 1)"
                }
                return RequestTemplate(
                    method: signInPath, tenant: tenants[user.tenant], authorization: [],
                    payload: (try? request.serializedBytes()) ?? [])
            } : []
    }
}

extension RequestTemplate {
    init(method: [UInt8], tenant: [UInt8], authorization: [UInt8], payload: [UInt8]) {
        self.init(method: "")
        self.method = method
        self.tenant = tenant
        self.authorization = authorization
        self.payload = payload
    }
}

/// Validate the seeded sessions' tokens, in turn (each connection starts at
/// its own offset) or at random.
final class ValidateWorkload: Workload, @unchecked Sendable {
    let requests: [RequestTemplate]
    private var position: Int
    private let random: Bool
    private var rng: SplitMix64

    init(requests: SessionRequests, connection: Int, connections: Int, random: Bool) {
        self.requests = requests.validate
        self.position = requests.validate.count * connection / max(1, connections)
        self.random = random
        self.rng = SplitMix64(seed: UInt64(connection) &* 0x1234_5678_9ABC + 7)
    }

    func next(id: UInt64, into buffer: inout ByteBuffer) -> (op: Int, tag: Int)? {
        let index: Int
        if random {
            index = rng.below(requests.count)
        } else {
            index = position
            position += 1
            if position == requests.count { position = 0 }
        }
        requests[index].write(id: id, into: &buffer)
        return (0, index)
    }
}

/// Sign in as random seeded users (the daemon's Argon2id parameters decide
/// the cost). The sessions are left behind.
final class SignInWorkload: Workload, @unchecked Sendable {
    let requests: [RequestTemplate]
    private var rng: SplitMix64

    init(requests: SessionRequests, connection: Int) {
        self.requests = requests.signIn
        self.rng = SplitMix64(seed: UInt64(connection) &* 0x9876_5432_1 + 3)
    }

    func next(id: UInt64, into buffer: inout ByteBuffer) -> (op: Int, tag: Int)? {
        requests[rng.below(requests.count)].write(id: id, into: &buffer)
        return (0, 0)
    }
}

/// Weights of the mixed scenario.
struct MixWeights: Sendable, Codable {
    var validate: Int
    var list: Int
    var signIn: Int
    var revoke: Int
    var twoFactorVerify: Int

    static let opNames = ["validate", "list", "signin", "revoke", "2fa-verify"]
    var values: [Int] { [validate, list, signIn, revoke, twoFactorVerify] }
}

/// A realistic blend: mostly Validate, some Sessions.List, sign-ins, and
/// revocations of sessions this run created (never of the seeded ones, so
/// the Validate tokens stay live; a revocation does drop that user's cached
/// sessions, as in production).
final class MixedWorkload: Workload, @unchecked Sendable {
    static let validateOp = 0, listOp = 1, signInOp = 2, revokeOp = 3, twoFactorOp = 4

    private let requests: SessionRequests
    private let cumulative: [Int]
    private let total: Int
    private var rng: SplitMix64
    private var position: Int
    /// Sessions this connection signed in, waiting to be revoked.
    private var revocable: [(tenant: Int, token: [UInt8], id: [UInt8])] = []
    private let revokePath = Array(Moat_V1_Sessions.Method.revoke.path.utf8)
    private let userTenants: [Int]
    private var twoFactor: TwoFactorLane

    init(
        requests: SessionRequests, seeds: SeedSet, weights: MixWeights, twoFactorUsers: [TwoFactorSeed] = [],
        connection: Int, connections: Int
    ) {
        self.requests = requests
        twoFactor = TwoFactorLane(
            all: twoFactorUsers, connection: connection, connections: connections, tenantSlugs: requests.tenantSlugs)
        var sum = 0
        cumulative = weights.values.map {
            sum += $0
            return sum
        }
        total = sum
        rng = SplitMix64(seed: UInt64(connection) &* 0x5555_1111 + 11)
        position = requests.validate.count * connection / max(1, connections)
        userTenants = seeds.users.map(\.tenant)
    }

    func next(id: UInt64, into buffer: inout ByteBuffer) -> (op: Int, tag: Int)? {
        let pick = rng.below(total)
        var op = cumulative.firstIndex { pick < $0 } ?? 0
        if op == Self.revokeOp && revocable.isEmpty { op = Self.signInOp }
        // Every 2FA user of this connection spent its codes for now (one
        // per user per 30 s, replay protection): a Validate instead.
        if op == Self.twoFactorOp {
            if twoFactor.write(id: id, into: &buffer) { return (op, 0) }
            op = Self.validateOp
        }
        switch op {
        case Self.listOp:
            requests.list[rng.below(requests.list.count)].write(id: id, into: &buffer)
            return (op, 0)
        case Self.signInOp:
            let user = rng.below(requests.signIn.count)
            requests.signIn[user].write(id: id, into: &buffer)
            return (op, userTenants[user])
        case Self.revokeOp:
            let session = revocable.removeLast()
            var payload: [UInt8] = [0x0A, UInt8(session.id.count)]  // RevokeSessionRequest.session_id = 1
            payload += session.id
            RequestTemplate(
                method: revokePath, tenant: requests.tenantSlugs[session.tenant], authorization: session.token,
                payload: payload
            ).write(id: id, into: &buffer)
            return (op, 0)
        default:
            requests.validate[position].write(id: id, into: &buffer)
            position += 1
            if position == requests.validate.count { position = 0 }
            return (Self.validateOp, 0)
        }
    }

    func completed(op: Int, tag: Int, response: ScannedResponse, frame: UnsafeRawBufferPointer) {
        guard op == Self.signInOp, response.code == 0, let payload = response.payload, revocable.count < 10_000,
            let signedIn = try? Moat_V1_SignInResponse(serializedBytes: Array(frame[payload])),
            !signedIn.secondFactorRequired
        else { return }
        revocable.append((tag, Array(signedIn.sessionToken.utf8), Array(signedIn.session.id.utf8)))
    }
}
