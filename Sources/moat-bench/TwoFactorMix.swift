import Foundation
import MoatClient
import MoatCrypto
import NIOCore

/// A seeded user with 2FA on, for TwoFactor.Verify in the mixed scenario.
struct TwoFactorSeed: Sendable {
    var tenant: Int
    var token: [UInt8]
    var totp: TOTP
    /// The last time step this run spent (replay protection refuses it and
    /// anything earlier).
    var lastStep: UInt64
}

enum TwoFactorSeeding {
    /// Enrols `count` seeded users (one session each) through the public
    /// API: BeginEnrollment with the seeded password, ConfirmEnrollment
    /// with a code computed here.
    static func enroll(count: Int, seeds: SeedSet, socket: String, quiet: Bool) async throws -> [TwoFactorSeed] {
        var chosen: [SeedSet.Session] = []
        var users = Set<Int>()
        for session in seeds.sessions where chosen.count < count && users.insert(session.user).inserted {
            chosen.append(session)
        }
        guard chosen.count == count else {
            throw BenchError("--two-factor-users \(count): only \(chosen.count) seeded users have a session")
        }
        let picked = chosen
        let client = MoatClient(socketPath: socket)
        defer { Task { await client.close() } }
        let started = Date()
        // BeginEnrollment checks the password: a real Argon2id hash on a
        // daemon with its default parameters. Two lanes (the hashing pool
        // is about one thread per core), a generous deadline and retries
        // of OVERLOADED / DEADLINE_EXCEEDED keep the setup from failing on
        // a loaded host; the measured load afterwards is what counts.
        let lanes = 2
        let enrolled = try await withThrowingTaskGroup(of: [TwoFactorSeed].self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var done: [TwoFactorSeed] = []
                    for session in stride(from: lane, to: picked.count, by: lanes).map({ picked[$0] }) {
                        let options = CallOptions(
                            tenant: seeds.tenants[session.tenant], authorization: session.token, timeout: .seconds(60))
                        let begun = try await retryingWhenBusy {
                            try await client.twoFactor.beginEnrollment(
                                .with { $0.password = seeds.password }, options: options)
                        }
                        guard let secret = Base32.decode(begun.secret.replacingOccurrences(of: " ", with: "")) else {
                            throw BenchError("BeginEnrollment returned a secret that is not base32")
                        }
                        let totp = try TOTP(secret: secret)
                        let now = Int64(Date().timeIntervalSince1970)
                        let code = try totp.code(at: now)
                        _ = try await client.twoFactor.confirmEnrollment(.with { $0.code = code }, options: options)
                        done.append(
                            TwoFactorSeed(
                                tenant: session.tenant, token: Array(session.token.utf8), totp: totp,
                                lastStep: totp.counter(at: now)))
                    }
                    return done
                }
            }
            var all: [TwoFactorSeed] = []
            for try await part in group { all += part }
            return all
        }
        if !quiet {
            FileHandle.standardError.write(
                Data(
                    String(
                        format: "enrolled 2FA for %d seeded users in %.1f s\n", enrolled.count,
                        Date().timeIntervalSince(started)
                    ).utf8))
        }
        return enrolled
    }

    /// Runs a setup call again (up to 5 times, backing off) while the
    /// daemon answers OVERLOADED (RESOURCE_EXHAUSTED) or the deadline passed.
    static func retryingWhenBusy<T: Sendable>(_ call: @Sendable () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await call()
            } catch let error as RPCError where attempt < 4 && (error.code == .resourceExhausted || error.code == .deadlineExceeded) {
                attempt += 1
                try await Task.sleep(for: .milliseconds(250 << attempt))
            }
        }
    }
}

/// This connection's share of the 2FA users, and the next code to verify.
struct TwoFactorLane {
    private var users: [TwoFactorSeed]
    private var cursor = 0
    private let path = Array(Moat_V1_TwoFactor.Method.verify.path.utf8)
    private let tenantSlugs: [[UInt8]]

    init(all: [TwoFactorSeed], connection: Int, connections: Int, tenantSlugs: [[UInt8]]) {
        users = all.enumerated().filter { $0.offset % max(1, connections) == connection }.map(\.element)
        self.tenantSlugs = tenantSlugs
    }

    /// Writes a Verify with a fresh code of the next user that has a
    /// step left (now, or one step ahead: the daemon accepts one step of
    /// skew); false if every user of the lane has spent its steps.
    mutating func write(id: UInt64, into buffer: inout ByteBuffer) -> Bool {
        guard !users.isEmpty else { return false }
        let current = users[0].totp.counter(at: Int64(Date().timeIntervalSince1970))
        for _ in 0..<users.count {
            let index = cursor
            cursor = (cursor + 1) % users.count
            let step = max(users[index].lastStep + 1, current == 0 ? 0 : current - 1)
            guard step <= current + 1, let code = try? users[index].totp.code(forCounter: step) else { continue }
            users[index].lastStep = step
            var payload: [UInt8] = [0x0A, UInt8(code.utf8.count)]  // VerifyTwoFactorRequest.code = 1
            payload += Array(code.utf8)
            RequestTemplate(
                method: path, tenant: tenantSlugs[users[index].tenant], authorization: users[index].token,
                payload: payload
            ).write(id: id, into: &buffer)
            return true
        }
        return false
    }
}
