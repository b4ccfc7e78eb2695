import ArgumentParser
import Foundation
import MoatClient
import NIOCore

/// Store writes through the public API: `Users.Create` (a new member per
/// call) or `Users.ChangePassword` (each seeded user's password, changed
/// again and again). Both hash a password with the daemon's Argon2id
/// parameters, so start the daemon with benchmark-only cheap hashing to
/// measure the store's write path rather than Argon2.
struct WriteScenario: AsyncParsableCommand {
    enum Operation: String, ExpressibleByArgument, CaseIterable, Sendable {
        case create
        case changePassword = "change-password"
    }

    static let configuration = CommandConfiguration(
        commandName: "writes",
        abstract: "Store writes: Users.Create (a new user per call) or Users.ChangePassword (seeded users).",
        discussion: """
            create makes users bench-RUN-CONNECTION-N@writes.example in the seeded tenants, as an \
            administrator caller (run as moatd's own user). change-password changes each seeded user's \
            password with one of its sessions (one call per user at a time: --in-flight 1), tracking the \
            current password; other sessions stay signed in. Both hash a password at the daemon's \
            Argon2id cost.
            """)
    @OptionGroup var load: LoadOptions
    @OptionGroup var seedOptions: SeedOptions
    @Option(help: "create or change-password.") var op: Operation = .create

    func validate() throws {
        if op == .changePassword, load.inFlight != 1 {
            throw ValidationError("writes --op change-password takes --in-flight 1 (one change per user at a time)")
        }
    }

    func run() async throws {
        guard load.engine == .nio else { throw ValidationError("writes runs on the nio engine only") }
        let machine = Machine.current()
        let started = Date()
        var seedOptions = self.seedOptions
        if seedOptions.seeds == nil, !seedOptions.wantsSeeding {
            seedOptions.seedUsers = 100
            seedOptions.seedSessions = 100
        }
        guard let (seeds, seeding) = try await seedOptions.load(socket: load.socket, quiet: load.quiet),
            !seeds.tenants.isEmpty
        else { throw ValidationError("writes needs seeded tenants: --seeds FILE or --seed-tenants N") }
        let connections = load.connections
        let plan: ScenarioPlan
        switch op {
        case .create:
            let run = UInt32.random(in: 0...UInt32.max)
            plan = ScenarioPlan(
                name: "writes create", opNames: ["users.create"],
                notes: ["Users.Create in \(seeds.tenants.count) seeded tenant(s); the users are left behind"],
                seeding: seeding,
                makeWorkload: { CreateUserWorkload(seeds: seeds, run: run, connection: $0) })
        case .changePassword:
            // One session per user; each connection owns its own users.
            var sessionOfUser: [Int: SeedSet.Session] = [:]
            for session in seeds.sessions where sessionOfUser[session.user] == nil { sessionOfUser[session.user] = session }
            guard sessionOfUser.count >= connections else {
                throw ValidationError(
                    "change-password needs a seeded session for at least one user per connection (\(sessionOfUser.count) users with sessions)")
            }
            let owned = sessionOfUser.keys.sorted().map { sessionOfUser[$0]! }
            plan = ScenarioPlan(
                name: "writes change-password", opNames: ["users.change_password"],
                notes: ["Users.ChangePassword of \(owned.count) seeded users, spread over the connections"],
                seeding: seeding,
                makeWorkload: { connection in
                    ChangePasswordWorkload(
                        sessions: owned.enumerated().filter { $0.offset % connections == connection }.map(\.element),
                        tenantSlugs: seeds.tenants, password: seeds.password, connection: connection)
                })
        }
        try await Runner.run(plan, options: load, machine: machine, startedAt: started)
    }
}

/// A new user per call, round robin over the seeded tenants.
final class CreateUserWorkload: Workload, @unchecked Sendable {
    private let tenants: [[UInt8]]
    private let prefix: String
    private let path = Array(Moat_V1_Users.Method.create.path.utf8)
    private var count = 0

    init(seeds: SeedSet, run: UInt32, connection: Int) {
        tenants = seeds.tenants.map { Array($0.utf8) }
        prefix = "bench-\(String(run, radix: 36))-\(connection)-"
    }

    func next(id: UInt64, into buffer: inout ByteBuffer) -> (op: Int, tag: Int)? {
        count += 1
        let request = Moat_V1_CreateUserRequest.with {
            $0.email = "\(prefix)\(count)@writes.example"
            $0.password = "moat-bench writes \(prefix)\(count)"
            $0.role = .member
        }
        RequestTemplate(
            method: path, tenant: tenants[count % tenants.count], authorization: [],
            payload: (try? request.serializedBytes()) ?? []
        ).write(id: id, into: &buffer)
        return (0, 0)
    }
}

/// Changes the passwords of this connection's users in turn, each from the
/// one it has now to a new one; a change that fails leaves it as it was.
final class ChangePasswordWorkload: Workload, @unchecked Sendable {
    private struct Account {
        var tenant: [UInt8]
        var token: [UInt8]
        var password: String
        var changes = 0
    }

    private var accounts: [Account]
    private let path = Array(Moat_V1_Users.Method.changePassword.path.utf8)
    private let connection: Int
    private var position = 0
    /// The password each call in flight sets, by account.
    private var pending: [Int: String] = [:]

    init(sessions: [SeedSet.Session], tenantSlugs: [String], password: String, connection: Int) {
        accounts = sessions.map {
            Account(tenant: Array(tenantSlugs[$0.tenant].utf8), token: Array($0.token.utf8), password: password)
        }
        self.connection = connection
    }

    func next(id: UInt64, into buffer: inout ByteBuffer) -> (op: Int, tag: Int)? {
        guard !accounts.isEmpty else { return nil }
        let index = position
        position = (position + 1) % accounts.count
        let account = accounts[index]
        let newPassword = "moat-bench changed \(connection)-\(index)-\(account.changes + 1)"
        pending[index] = newPassword
        let request = Moat_V1_ChangePasswordRequest.with {
            $0.currentPassword = account.password
            $0.newPassword = newPassword
        }
        RequestTemplate(
            method: path, tenant: account.tenant, authorization: account.token,
            payload: (try? request.serializedBytes()) ?? []
        ).write(id: id, into: &buffer)
        return (0, index)
    }

    func completed(op: Int, tag: Int, response: ScannedResponse, frame: UnsafeRawBufferPointer) {
        guard let newPassword = pending.removeValue(forKey: tag), response.code == 0 else { return }
        accounts[tag].password = newPassword
        accounts[tag].changes += 1
    }
}
