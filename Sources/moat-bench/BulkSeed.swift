import ArgumentParser
import Foundation
import Logging
import MoatCore
import MoatCrypto
import MoatServer
import MoatStore

/// BENCHMARK ONLY. Writes tenants, users and sessions straight into the
/// SQLite database of a data directory, through MoatStore's own schema
/// (its migrations and its writer's inserts), so that moatd started on that
/// directory serves them as if they had signed in. Seeding 10^7 sessions
/// through the public API takes an hour; this takes minutes.
///
/// It is a moat-bench command, never part of moatd. It refuses a database
/// that holds anything (tenants, users, sessions or any daemon fact) unless
/// that database carries the benchmark mark, which it writes first: so it
/// can never add accounts to a real deployment's database.
struct BulkSeed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulk-seed",
        abstract: "BENCHMARK ONLY: write tenants, users and sessions straight into a fresh data directory.",
        discussion: """
            Opens (creating it) DIR/moat.db with MoatStore's migrations, refuses it unless it is empty or \
            already marked as a benchmark's (meta key \(BulkSeed.markKey)), marks it, and inserts --tenants \
            tenants, --users users (spread over the tenants, one shared Argon2id hash of --password) and \
            --sessions live sessions (spread over the users; random 32-byte tokens, stored as SHA-256 like a \
            sign-in's). Writes the tokens as a moat-bench seed file (--out), which `moat-bench validate \
            --seeds FILE` reads. Then start moatd on DIR as usual.
            """)

    /// The meta key that marks a database as a benchmark's.
    static let markKey = "moat_bench.bulk_seeded"

    @Option(help: "The data directory (created if missing); its moat.db must be new or a benchmark's.")
    var dataDir: String
    @Option(help: "Tenants to create.") var tenants = 1
    @Option(help: "Users to create, spread over the tenants.") var users = 1
    @Option(help: "Live sessions to create, spread over the users.") var sessions = 0
    @Option(help: "The seed file to write (tokens of the sessions).") var out: String
    @Option(help: "The users' password (one hash shared by all).") var password = "bench-password-1234"
    @Option(help: "Rows per write transaction.") var batch = 20_000

    func validate() throws {
        guard tenants >= 1, users >= tenants else { throw ValidationError("--users must be at least --tenants (≥ 1)") }
        guard sessions >= 0, batch >= 1 else { throw ValidationError("--sessions ≥ 0 and --batch ≥ 1") }
        guard password.utf8.count >= TenantPolicy.passwordFloor else {
            throw ValidationError("--password must be at least \(TenantPolicy.passwordFloor) bytes")
        }
    }

    func run() async throws {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        var logger = Logger(label: "moat-bench.bulk-seed")
        logger.logLevel = .warning
        let path = (dataDir as NSString).appendingPathComponent("moat.db")
        // Before the store's migrations touch it: an existing file that is
        // not a benchmark's is refused as it is.
        if FileManager.default.fileExists(atPath: path) { try Self.checkExistingFile(path) }
        let store = try await SQLiteAccountStore.open(path: path, encoder: ProtobufEventEncoder(), logger: logger)
        do {
            try await seed(store)
        } catch {
            await store.close()
            throw error
        }
        await store.close()
    }

    /// Refuses an existing database file, read-only, unless it carries the
    /// benchmark mark or none of its tables (but the migrations' own) has a
    /// row.
    static func checkExistingFile(_ path: String) throws {
        let connection = try SQLiteConnection(path: path, flags: .readOnly)
        let marked = (try? connection.queryFirst("SELECT 1 AS marked FROM meta WHERE key = ?", [markKey]) { try $0.int("marked") }) != nil
        if marked { return }
        let tables = try connection.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'", []
        ) { try $0.string("name") }
        for table in tables where table != "schema_migrations" {
            let quoted = "\"" + table.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            let rows = try connection.queryFirst("SELECT count(*) AS n FROM \(quoted)", []) { try $0.int("n") } ?? 0
            if rows > 0 {
                throw BenchError(
                    "refusing to bulk-seed \(path): it is not a benchmark's database (table \(table) has \(rows) rows)")
            }
        }
    }

    /// Whether the database may be seeded: marked as a benchmark's, or
    /// holding nothing at all.
    static func checkSeedable(_ store: SQLiteAccountStore) async throws {
        if try await store.meta(markKey) != nil { return }
        let counts = try await store.database.read { connection in
            try ["tenants", "users", "sessions", "meta"].map { table in
                try connection.queryFirst("SELECT count(*) AS n FROM \(table)", []) { try $0.int("n") } ?? 0
            }
        }
        guard counts.allSatisfy({ $0 == 0 }) else {
            throw BenchError(
                "refusing to bulk-seed a database that is not empty and not a benchmark's "
                    + "(tenants \(counts[0]), users \(counts[1]), sessions \(counts[2]), meta rows \(counts[3]))")
        }
    }

    private func seed(_ store: SQLiteAccountStore) async throws {
        try await Self.checkSeedable(store)
        let started = Date()
        try await store.setMeta(Self.markKey, Array("moat-bench bulk-seed \(ISO8601DateFormatter().string(from: started))".utf8))
        let hasher = try PasswordHasher(executor: InlineHashingExecutor())
        let passwordHash = try await hasher.hash(Array(password.utf8))
        let now = SystemWallClock().now()
        let run = RandomIdentifier.make().prefix(6)
        let policy = TenantPolicy()

        var seeds = SeedSet(password: password)
        var tenantRows: [Tenant] = []
        for index in 0..<tenants {
            let slug = "bench-\(run)-\(index)"
            tenantRows.append(
                Tenant(id: .random(), slug: slug, name: "Benchmark \(index)", policy: policy, createdAt: now))
            seeds.tenants.append(slug)
        }
        var userRows: [User] = []
        userRows.reserveCapacity(users)
        for index in 0..<users {
            let tenant = index % tenants
            let email = "user\(index)@bench.test"
            userRows.append(
                User(
                    id: .random(), tenantID: tenantRows[tenant].id, email: email, passwordHash: passwordHash,
                    role: index < tenants ? .owner : .member, createdAt: now))
            seeds.users.append(SeedSet.User(tenant: tenant, email: email))
        }
        let tenantBatch = tenantRows
        try await store.write { writer in for tenant in tenantBatch { try writer.insert(tenant) } }
        for start in stride(from: 0, to: users, by: batch) {
            let rows = Array(userRows[start..<min(users, start + batch)])
            try await store.write { writer in for user in rows { try writer.insert(user) } }
        }

        seeds.sessions.reserveCapacity(sessions)
        var written = 0
        while written < sessions {
            let count = min(batch, sessions - written)
            var rows: [Session] = []
            rows.reserveCapacity(count)
            for offset in 0..<count {
                let userIndex = (written + offset) % users
                let user = userRows[userIndex]
                let token = OpaqueToken.make()
                let session = Session(
                    id: .random(), tenantID: user.tenantID, userID: user.id, tokenHash: OpaqueToken.hash(token),
                    client: ClientDetails(), createdAt: now, lastActiveAt: now,
                    absoluteExpiresAt: now.adding(seconds: policy.sessionAbsoluteLifetimeSeconds),
                    idleTimeoutSeconds: policy.sessionIdleTimeoutSeconds, secondFactorSatisfied: false)
                rows.append(session)
                seeds.sessions.append(
                    SeedSet.Session(tenant: userIndex % tenants, user: userIndex, id: session.id.rawValue, token: token))
            }
            let batchRows = rows
            try await store.write { writer in for session in batchRows { try writer.insert(session) } }
            written += count
            if written % 1_000_000 == 0 || written == sessions {
                log(String(format: "bulk-seed: %d of %d sessions (%.0f s)", written, sessions, Date().timeIntervalSince(started)))
            }
        }
        try seeds.write(to: out)
        log(
            String(
                format: "bulk-seed: %d tenant(s), %d user(s), %d session(s) into %@ in %.1f s; tokens in %@",
                tenants, users, sessions, dataDir, Date().timeIntervalSince(started), out))
    }
}
