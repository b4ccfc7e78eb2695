import Foundation
import XCTest

@testable import MoatServer

final class ConfigurationTests: XCTestCase {
    private func write(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "moatd-\(UUID().uuidString).toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testDefaults() throws {
        let configuration = try ConfigurationLoader.load(file: nil)
        XCTAssertEqual(configuration, MoatConfiguration())
        XCTAssertEqual(configuration.dataDirectory, "./moat-data")
        XCTAssertEqual(configuration.socketPath, "./moat-data/moat.sock")
        XCTAssertEqual(configuration.socket.mode, 0o660)
        XCTAssertEqual(configuration.limits.maxFrameSize, 1 << 20)
        XCTAssertEqual(configuration.log.level, .info)
    }

    func testDefaultAccessPolicyMakesRootAndSelfAdministrators() {
        let policy = MoatConfiguration().accessPolicy(daemonUID: 1234)
        XCTAssertEqual(policy.adminUIDs, [0, 1234])
        XCTAssertTrue(policy.allowedUIDs.isEmpty)
    }

    func testFileThenSetThenFlags() throws {
        let file = try write(
            """
            data_dir = "/var/lib/moat"
            [socket]
            mode = "0600"
            [access]
            allow_uids = [1000, 1001]
            admin_gids = [50]
            [limits]
            max_connections = 64
            idle_timeout_seconds = 30
            [log]
            level = "debug"
            format = "json"
            """)
        let configuration = try ConfigurationLoader.load(
            file: file, overrides: ["limits.max_connections=8", "socket.path=/run/moat/moat.sock"],
            flags: .init(dataDirectory: "/srv/moat", logLevel: "warning"))
        XCTAssertEqual(configuration.dataDirectory, "/srv/moat", "flags win")
        XCTAssertEqual(configuration.socketPath, "/run/moat/moat.sock", "--set takes a bare string")
        XCTAssertEqual(configuration.socket.mode, 0o600)
        XCTAssertEqual(configuration.access.allowUIDs, [1000, 1001])
        XCTAssertEqual(configuration.access.adminGIDs, [50])
        XCTAssertEqual(configuration.limits.maxConnections, 8, "--set wins over the file")
        XCTAssertEqual(configuration.limits.idleTimeout, .seconds(30))
        XCTAssertEqual(configuration.log.level, .warning)
        XCTAssertEqual(configuration.log.format, .json)
    }

    func testInvitationLifetime() throws {
        XCTAssertEqual(try ConfigurationLoader.load(file: nil).accounts.invitationLifetimeSeconds, 7 * 86_400)
        let configuration = try ConfigurationLoader.load(
            file: nil, overrides: ["accounts.invitation_lifetime_seconds=86400"])
        XCTAssertEqual(configuration.accounts.invitationLifetimeSeconds, 86_400)
    }

    /// The store backend settings: defaults, `--set` for each, and errors
    /// that name the key (never quoting a password).
    func testStoreBackendSettings() throws {
        let defaults = try ConfigurationLoader.load(file: nil)
        XCTAssertEqual(defaults.store.backend, .sqlite)
        XCTAssertNil(defaults.store.postgresURL)
        XCTAssertNil(defaults.store.postgresPasswordFile)
        XCTAssertEqual(defaults.store.postgresConnections, 8)
        let postgres = try ConfigurationLoader.load(
            file: nil,
            overrides: [
                "store.backend=postgres", "store.postgres_url=postgresql://moat@db.internal/moat?sslmode=require",
                "store.postgres_password_file=/etc/moat/pg-password", "store.postgres_connections=16",
            ])
        XCTAssertEqual(postgres.store.backend, .postgres)
        XCTAssertEqual(postgres.store.postgresURL, "postgresql://moat@db.internal/moat?sslmode=require")
        XCTAssertEqual(postgres.store.postgresPasswordFile, "/etc/moat/pg-password")
        XCTAssertEqual(postgres.store.postgresConnections, 16)
        let reloaded = try ConfigurationLoader.load(file: try write(ConfigurationLoader.render(postgres)))
        XCTAssertEqual(reloaded.store, postgres.store, "--print-config output loads back")
        for (override, key) in [
            ("store.backend=mysql", "store.backend"),
            ("store.backend=postgres", "store.postgres_url"),
            ("store.postgres_url=mysql://x", "store.postgres_url"),
            ("store.postgres_url=postgresql://moat:hunter2@db/moat", "store.postgres_url"),
            ("store.postgres_url=postgresql:///moat?password=hunter2", "store.postgres_url"),
            ("store.postgres_connections=0", "store.postgres_connections"),
            ("store.postgres_connections=257", "store.postgres_connections"),
            ("store.postgres_pool=3", "store.postgres_pool"),
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.load(file: nil, overrides: [override]), override) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
                XCTAssertFalse("\(error)".contains("hunter2"), "a password in an error: \(error)")
            }
        }
    }

    /// `cluster.fence_ms`: default 250, `--set` and TOML, rendered by
    /// --print-config, out-of-range values named.
    func testClusterFenceSetting() throws {
        XCTAssertEqual(try ConfigurationLoader.load(file: nil).cluster.fenceMilliseconds, 250)
        let set = try ConfigurationLoader.load(file: nil, overrides: ["cluster.fence_ms=40"])
        XCTAssertEqual(set.cluster.fenceMilliseconds, 40)
        XCTAssertEqual(try ConfigurationLoader.load(file: try write("[cluster]\nfence_ms = 1000\n")).cluster.fenceMilliseconds, 1000)
        let reloaded = try ConfigurationLoader.load(file: try write(ConfigurationLoader.render(set)))
        XCTAssertEqual(reloaded.cluster, set.cluster, "--print-config output loads back")
        for (override, key) in [
            ("cluster.fence_ms=9", "cluster.fence_ms"), ("cluster.fence_ms=60001", "cluster.fence_ms"),
            ("cluster.fence_ms=\"fast\"", "cluster.fence_ms"), ("cluster.fence=250", "cluster.fence"),
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.load(file: nil, overrides: [override]), override) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
    }

    func testUnknownKeysAreErrors() throws {
        let file = try write("[limits]\nmax_conections = 5\n")
        XCTAssertThrowsError(try ConfigurationLoader.load(file: file)) { error in
            XCTAssertTrue("\(error)".contains("limits.max_conections"), "\(error)")
        }
        XCTAssertThrowsError(try ConfigurationLoader.load(file: nil, overrides: ["nope=1"])) { error in
            XCTAssertTrue("\(error)".contains("nope"), "\(error)")
        }
    }

    func testWrongTypesAndRangesAreErrors() throws {
        for (text, key) in [
            ("[limits]\nmax_connections = \"many\"", "limits.max_connections"),
            ("[limits]\nmax_frame_bytes = 10", "limits.max_frame_bytes"),
            ("[socket]\nmode = \"999\"", "socket.mode"),
            ("[access]\nallow_uids = [-1]", "access.allow_uids"),
            ("[log]\nlevel = \"loud\"", "log.level"),
            ("limits = 3", "limits"),
            ("[accounts]\ninvitation_lifetime_seconds = 60", "accounts.invitation_lifetime_seconds"),
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.load(file: try write(text)), text) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
    }

    func testSyntaxErrorNamesFileAndLine() throws {
        let file = try write("data_dir = \"x\"\n[limits\n")
        XCTAssertThrowsError(try ConfigurationLoader.load(file: file)) { error in
            XCTAssertTrue("\(error)".contains(file), "\(error)")
            XCTAssertTrue("\(error)".contains("2"), "\(error)")
        }
    }

    func testMissingFileIsAnError() {
        XCTAssertThrowsError(try ConfigurationLoader.load(file: "/nonexistent/moatd.toml"))
    }

    func testRenderedConfigurationLoadsBackUnchanged() throws {
        var configuration = MoatConfiguration()
        configuration.dataDirectory = "/data \"quoted\""
        configuration.socket.path = "/run/m.sock"
        configuration.access.allowUIDs = [7]
        configuration.limits.frameTimeout = .milliseconds(1500)
        configuration.log.format = .json
        let reloaded = try ConfigurationLoader.load(file: try write(ConfigurationLoader.render(configuration)))
        XCTAssertEqual(reloaded, configuration)
    }

    func testExampleConfigInDeployIsTheDefaults() throws {
        // deploy/moatd.toml documents every setting with its default value.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let example = root.appendingPathComponent("deploy/moatd.toml").path
        var expected = MoatConfiguration()
        expected.socket.path = "./moat-data/moat.sock"
        XCTAssertEqual(try ConfigurationLoader.load(file: example), expected)
    }
}
