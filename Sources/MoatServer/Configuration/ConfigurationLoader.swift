import Foundation
import Logging
import MoatTransport

/// A configuration that cannot be used, with the setting it is about.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Builds a ``MoatConfiguration`` from the defaults, a TOML file, `--set`
/// overrides and dedicated flags, in that order. Unknown keys and values of
/// the wrong type or range are errors naming the key, so a typo never
/// silently falls back to a default.
public enum ConfigurationLoader {
    /// Values of moatd's dedicated flags; nil means not given.
    public struct Flags: Sendable {
        public var dataDirectory: String?
        public var socketPath: String?
        public var logLevel: String?
        public var logFormat: String?

        public init(
            dataDirectory: String? = nil, socketPath: String? = nil, logLevel: String? = nil, logFormat: String? = nil
        ) {
            self.dataDirectory = dataDirectory
            self.socketPath = socketPath
            self.logLevel = logLevel
            self.logFormat = logFormat
        }
    }

    /// Loads the configuration.
    ///
    /// - Parameters:
    ///   - file: A TOML file, or nil.
    ///   - overrides: `key=value` settings (`limits.max_connections=64`);
    ///     the value is TOML (`socket.path="/run/moat.sock"`); a bare word is
    ///     taken as a string.
    ///   - flags: Dedicated flags, applied last.
    public static func load(file: String?, overrides: [String] = [], flags: Flags = Flags()) throws
        -> MoatConfiguration
    {
        var root: [String: TOMLValue] = [:]
        if let file {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw ConfigurationError("cannot read \(file): \(error.localizedDescription)")
            }
            do {
                root = try TOMLDocument.parse(text)
            } catch {
                throw ConfigurationError("\(file): \(error)")
            }
        }
        for override in overrides {
            guard let equals = override.firstIndex(of: "="), equals != override.startIndex else {
                throw ConfigurationError("--set \(override): expected key=value")
            }
            let key = override[..<equals].trimmingCharacters(in: .whitespaces)
            let value = override[override.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            let parsed: [String: TOMLValue]
            if let document = try? TOMLDocument.parse("\(key) = \(value)") {
                parsed = document
            } else if let document = try? TOMLDocument.parse("\(key) = \"\(value)\"") {
                parsed = document
            } else {
                throw ConfigurationError("--set \(override): not a valid key and value")
            }
            root = merge(root, parsed)
        }

        var configuration = MoatConfiguration()
        var reader = TableReader(path: "", table: root)
        try apply(&reader, to: &configuration)

        if let dataDirectory = flags.dataDirectory { configuration.dataDirectory = dataDirectory }
        if let socketPath = flags.socketPath { configuration.socket.path = socketPath }
        if let level = flags.logLevel { configuration.log.level = try parseLevel(level, key: "--log-level") }
        if let format = flags.logFormat { configuration.log.format = try parseFormat(format, key: "--log-format") }
        try validate(configuration)
        return configuration
    }

    private static func apply(_ root: inout TableReader, to configuration: inout MoatConfiguration) throws {
        if let dataDirectory = try root.string("data_dir") { configuration.dataDirectory = dataDirectory }

        if var socket = try root.table("socket") {
            if let path = try socket.string("path") { configuration.socket.path = path }
            if let mode = try socket.string("mode") {
                guard let value = UInt32(mode, radix: 8), value <= 0o777 else {
                    throw ConfigurationError("socket.mode: expected an octal mode like \"0660\", got \"\(mode)\"")
                }
                configuration.socket.mode = value
            }
            try socket.finish()
        }

        if var access = try root.table("access") {
            if let uids = try access.ids("allow_uids") { configuration.access.allowUIDs = uids }
            if let gids = try access.ids("allow_gids") { configuration.access.allowGIDs = gids }
            if let uids = try access.ids("admin_uids") { configuration.access.adminUIDs = uids }
            if let gids = try access.ids("admin_gids") { configuration.access.adminGIDs = gids }
            try access.finish()
        }

        if var limits = try root.table("limits") {
            var target = configuration.limits
            if let value = try limits.int("max_frame_bytes", in: 1024...(64 << 20)) { target.maxFrameSize = value }
            if let value = try limits.int("max_in_flight_per_connection", in: 1...65536) {
                target.maxInFlightPerConnection = value
            }
            if let value = try limits.int("max_connections", in: 1...1_000_000) { target.maxConnections = value }
            if let value = try limits.int("frame_timeout_ms", in: 1...3_600_000) {
                target.frameTimeout = .milliseconds(value)
            }
            if let value = try limits.int("idle_timeout_seconds", in: 1...86400) { target.idleTimeout = .seconds(value) }
            if let value = try limits.int("default_deadline_ms", in: 1...3_600_000) {
                target.defaultDeadline = .milliseconds(value)
            }
            if let value = try limits.int("max_deadline_ms", in: 1...3_600_000) { target.maxDeadline = .milliseconds(value) }
            if let value = try limits.int("shutdown_grace_seconds", in: 0...3600) {
                target.shutdownGracePeriod = .seconds(value)
            }
            try limits.finish()
            configuration.limits = target
        }

        if var store = try root.table("store") {
            if let value = try store.string("synchronous") {
                guard let mode = MoatConfiguration.Store.Synchronous(rawValue: value.lowercased()) else {
                    throw ConfigurationError("store.synchronous: expected full or normal, got \"\(value)\"")
                }
                configuration.store.synchronous = mode
            }
            if let value = try store.int("readers", in: 1...64) { configuration.store.readers = value }
            if let value = try store.string("backend") {
                guard let backend = MoatConfiguration.Store.Backend(rawValue: value.lowercased()) else {
                    throw ConfigurationError("store.backend: expected sqlite or postgres, got \"\(value)\"")
                }
                configuration.store.backend = backend
            }
            if let value = try store.string("postgres_url"), !value.isEmpty {
                guard value.hasPrefix("postgresql://") || value.hasPrefix("postgres://") else {
                    throw ConfigurationError(
                        "store.postgres_url: expected a libpq URI (postgresql://...), got \"\(Self.redactedURL(value))\"")
                }
                guard !Self.urlHasPassword(value) else {
                    throw ConfigurationError(
                        "store.postgres_url: the URL holds a password; put it in store.postgres_password_file or PGPASSWORD")
                }
                configuration.store.postgresURL = value
            }
            if let value = try store.string("postgres_password_file"), !value.isEmpty {
                configuration.store.postgresPasswordFile = value
            }
            if let value = try store.int("postgres_connections", in: 1...256) {
                configuration.store.postgresConnections = value
            }
            try store.finish()
        }

        if var cluster = try root.table("cluster") {
            if let value = try cluster.int("fence_ms", in: 10...60_000) { configuration.cluster.fenceMilliseconds = value }
            try cluster.finish()
        }

        if var hashing = try root.table("hashing") {
            if let value = try hashing.int("memory_kib", in: 8...(4 << 20)) {
                configuration.hashing.parameters.memoryKiB = value
            }
            if let value = try hashing.int("iterations", in: 1...100) {
                configuration.hashing.parameters.iterations = value
            }
            if let value = try hashing.int("parallelism", in: 1...64) {
                configuration.hashing.parameters.parallelism = value
            }
            if let value = try hashing.int("workers", in: 1...256) { configuration.hashing.workers = value }
            if let value = try hashing.int("queue", in: 0...100_000) { configuration.hashing.queueCapacity = value }
            if let value = try hashing.bool("allow_weak") { configuration.allowWeakHashing = value }
            try hashing.finish()
        }

        if var accounts = try root.table("accounts") {
            if let value = try accounts.int("reset_token_lifetime_seconds", in: 60...86400) {
                configuration.accounts.resetTokenLifetimeSeconds = Int64(value)
            }
            if let value = try accounts.int("deletion_grace_days", in: 1...365) {
                configuration.accounts.deletionGraceSeconds = Int64(value) * 86400
            }
            if let value = try accounts.int("purge_interval_seconds", in: 10...86400) {
                configuration.accounts.purgeIntervalSeconds = Int64(value)
            }
            if let value = try accounts.int("invitation_lifetime_seconds", in: 3600...(90 * 86400)) {
                configuration.accounts.invitationLifetimeSeconds = Int64(value)
            }
            if let value = try accounts.int("address_failure_limit", in: 0...1_000_000) {
                configuration.accounts.addressThrottle.failureLimit = value
            }
            if let value = try accounts.int("address_failure_window_seconds", in: 60...86400) {
                configuration.accounts.addressThrottle.windowSeconds = Int64(value)
            }
            if let value = try accounts.int("new_device_days", in: 0...3650) {
                configuration.accounts.newDeviceWindowDays = value
            }
            try accounts.finish()
        }

        if var sessions = try root.table("sessions") {
            if let value = try sessions.int("cache_entries", in: 0...10_000_000) {
                configuration.sessions.cacheEntries = value
            }
            if let value = try sessions.int("last_active_flush_seconds", in: 1...3600) {
                configuration.sessions.lastActiveFlushSeconds = value
            }
            if let value = try sessions.int("last_active_granularity_seconds", in: 0...3600) {
                configuration.sessions.lastActiveGranularitySeconds = value
            }
            if let value = try sessions.int("cleanup_interval_seconds", in: 60...86400) {
                configuration.sessions.cleanupIntervalSeconds = value
            }
            if let value = try sessions.int("retention_days", in: 0...3650) { configuration.sessions.retentionDays = value }
            try sessions.finish()
        }

        if var events = try root.table("events") {
            if let value = try events.int("retention_days", in: 0...3650) { configuration.events.retentionDays = value }
            if let value = try events.int("prune_interval_seconds", in: 10...86400) {
                configuration.events.pruneIntervalSeconds = value
            }
            if let value = try events.int("max_poll_wait_seconds", in: 0...3600) {
                configuration.events.maxPollWaitSeconds = value
            }
            try events.finish()
        }

        if var metrics = try root.table("metrics") {
            if let value = try metrics.string("listen") {
                if value.isEmpty {
                    configuration.metrics.listen = nil
                } else if let address = MetricsAddress.parse(value) {
                    configuration.metrics.listen = address
                } else {
                    throw ConfigurationError(
                        "metrics.listen: expected \"unix:/path\" or \"127.0.0.1:PORT\" (or \"\" for off), got \"\(value)\"")
                }
            }
            try metrics.finish()
        }

        if var keys = try root.table("keys") {
            if let value = try keys.int("rotation_batch_size", in: 1...10_000) {
                configuration.keys.rotationBatchSize = value
            }
            try keys.finish()
        }

        if var log = try root.table("log") {
            if let level = try log.string("level") { configuration.log.level = try parseLevel(level, key: "log.level") }
            if let format = try log.string("format") {
                configuration.log.format = try parseFormat(format, key: "log.format")
            }
            try log.finish()
        }
        try root.finish()
    }

    private static func validate(_ configuration: MoatConfiguration) throws {
        guard !configuration.dataDirectory.isEmpty else { throw ConfigurationError("data_dir: must not be empty") }
        if configuration.store.backend == .postgres, configuration.store.postgresURL == nil {
            throw ConfigurationError("store.postgres_url: required with store.backend = \"postgres\"")
        }
        guard configuration.socketPath.utf8.count < 108 else {
            throw ConfigurationError("socket.path: \(configuration.socketPath.utf8.count) bytes; at most 107 allowed")
        }
        guard configuration.limits.defaultDeadline <= configuration.limits.maxDeadline else {
            throw ConfigurationError("limits.default_deadline_ms: larger than limits.max_deadline_ms")
        }
        try validateHashing(configuration)
    }

    /// Whether a libpq URI carries a password (`user:secret@`, or `password=`).
    static func urlHasPassword(_ url: String) -> Bool {
        let afterScheme = url.split(separator: "://", maxSplits: 1).last.map(String.init) ?? url
        let authority = afterScheme.prefix { $0 != "/" && $0 != "?" }
        if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") { return true }
        let query = url.split(separator: "?", maxSplits: 1).dropFirst().first ?? ""
        return query.split(separator: "&").contains { $0.lowercased().hasPrefix("password=") }
    }

    /// A URL fit for an error message: at most 80 characters, the user
    /// information dropped.
    static func redactedURL(_ url: String) -> String {
        var text = url
        if let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@") {
            text.replaceSubrange(scheme.upperBound..<at, with: "…")
        }
        return text.count > 80 ? String(text.prefix(80)) + "…" : text
    }

    private static func parseLevel(_ value: String, key: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: value.lowercased()) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigurationError("\(key): expected one of \(names), got \"\(value)\"")
        }
        return level
    }

    private static func parseFormat(_ value: String, key: String) throws -> StructuredLogHandler.Format {
        guard let format = StructuredLogHandler.Format(rawValue: value.lowercased()) else {
            throw ConfigurationError("\(key): expected text or json, got \"\(value)\"")
        }
        return format
    }

    private static func merge(_ base: [String: TOMLValue], _ overlay: [String: TOMLValue]) -> [String: TOMLValue] {
        var result = base
        for (key, value) in overlay {
            if case .table(let inner) = value, case .table(let existing)? = result[key] {
                result[key] = .table(merge(existing, inner))
            } else {
                result[key] = value
            }
        }
        return result
    }

    /// The configuration as TOML, every setting spelled out.
    public static func render(_ configuration: MoatConfiguration) -> String {
        func quote(_ value: String) -> String {
            "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        func ids(_ values: [UInt32]) -> String { "[" + values.map(String.init).joined(separator: ", ") + "]" }
        func milliseconds(_ duration: Duration) -> Int64 { duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000 }
        let limits = configuration.limits
        return """
            data_dir = \(quote(configuration.dataDirectory))

            [socket]
            path = \(quote(configuration.socketPath))
            mode = "0\(String(configuration.socket.mode, radix: 8))"

            [access]
            allow_uids = \(ids(configuration.access.allowUIDs))
            allow_gids = \(ids(configuration.access.allowGIDs))
            admin_uids = \(ids(configuration.access.adminUIDs))
            admin_gids = \(ids(configuration.access.adminGIDs))

            [limits]
            max_frame_bytes = \(limits.maxFrameSize)
            max_in_flight_per_connection = \(limits.maxInFlightPerConnection)
            max_connections = \(limits.maxConnections)
            frame_timeout_ms = \(milliseconds(limits.frameTimeout))
            idle_timeout_seconds = \(limits.idleTimeout.components.seconds)
            default_deadline_ms = \(milliseconds(limits.defaultDeadline))
            max_deadline_ms = \(milliseconds(limits.maxDeadline))
            shutdown_grace_seconds = \(limits.shutdownGracePeriod.components.seconds)

            [store]
            backend = \(quote(configuration.store.backend.rawValue))
            synchronous = \(quote(configuration.store.synchronous.rawValue))
            readers = \(configuration.store.readers)
            postgres_url = \(quote(configuration.store.postgresURL ?? ""))
            postgres_password_file = \(quote(configuration.store.postgresPasswordFile ?? ""))
            postgres_connections = \(configuration.store.postgresConnections)

            [cluster]
            fence_ms = \(configuration.cluster.fenceMilliseconds)

            [hashing]
            memory_kib = \(configuration.hashing.parameters.memoryKiB)
            iterations = \(configuration.hashing.parameters.iterations)
            parallelism = \(configuration.hashing.parameters.parallelism)
            workers = \(configuration.hashing.workers)
            queue = \(configuration.hashing.queueCapacity)
            allow_weak = \(configuration.allowWeakHashing)

            [accounts]
            reset_token_lifetime_seconds = \(configuration.accounts.resetTokenLifetimeSeconds)
            deletion_grace_days = \(configuration.accounts.deletionGraceSeconds / 86400)
            purge_interval_seconds = \(configuration.accounts.purgeIntervalSeconds)
            invitation_lifetime_seconds = \(configuration.accounts.invitationLifetimeSeconds)
            address_failure_limit = \(configuration.accounts.addressThrottle.failureLimit)
            address_failure_window_seconds = \(configuration.accounts.addressThrottle.windowSeconds)
            new_device_days = \(configuration.accounts.newDeviceWindowDays)

            [sessions]
            cache_entries = \(configuration.sessions.cacheEntries)
            last_active_flush_seconds = \(configuration.sessions.lastActiveFlushSeconds)
            last_active_granularity_seconds = \(configuration.sessions.lastActiveGranularitySeconds)
            cleanup_interval_seconds = \(configuration.sessions.cleanupIntervalSeconds)
            retention_days = \(configuration.sessions.retentionDays)

            [events]
            retention_days = \(configuration.events.retentionDays)
            prune_interval_seconds = \(configuration.events.pruneIntervalSeconds)
            max_poll_wait_seconds = \(configuration.events.maxPollWaitSeconds)

            [metrics]
            listen = \(quote(configuration.metrics.listen?.description ?? ""))

            [keys]
            rotation_batch_size = \(configuration.keys.rotationBatchSize)

            [log]
            level = \(quote(configuration.log.level.rawValue))
            format = \(quote(configuration.log.format.rawValue))

            """
    }
}

/// Reads one TOML table, remembering which keys were used so that the rest
/// can be reported as unknown.
struct TableReader {
    let path: String
    let table: [String: TOMLValue]
    private var used: Set<String> = []

    init(path: String, table: [String: TOMLValue]) {
        self.path = path
        self.table = table
    }

    private func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func string(_ key: String) throws -> String? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard case .string(let string) = value else { throw ConfigurationError("\(name(key)): expected a string") }
        return string
    }

    mutating func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard case .integer(let integer) = value else { throw ConfigurationError("\(name(key)): expected an integer") }
        guard let int = Int(exactly: integer), range.contains(int) else {
            throw ConfigurationError("\(name(key)): \(integer) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return int
    }

    mutating func bool(_ key: String) throws -> Bool? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard case .boolean(let bool) = value else { throw ConfigurationError("\(name(key)): expected true or false") }
        return bool
    }

    mutating func ids(_ key: String) throws -> [UInt32]? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard case .array(let items) = value else { throw ConfigurationError("\(name(key)): expected an array of ids") }
        return try items.map { item in
            guard case .integer(let integer) = item, let id = UInt32(exactly: integer) else {
                throw ConfigurationError("\(name(key)): expected non-negative integer ids")
            }
            return id
        }
    }

    mutating func table(_ key: String) throws -> TableReader? {
        used.insert(key)
        guard let value = table[key] else { return nil }
        guard case .table(let inner) = value else { throw ConfigurationError("\(name(key)): expected a table") }
        return TableReader(path: name(key), table: inner)
    }

    /// Throws for the keys no lookup asked for, naming each in full and, when
    /// one setting of this table is close, the one probably meant.
    func finish() throws {
        let unknown = table.keys.filter { !used.contains($0) }.sorted()
        guard unknown.isEmpty else {
            // "KEY: reason" (ConfigurationError.key reads the key back),
            // with the setting probably meant when one is close.
            let hints = unknown.compactMap { key in TOMLPath.closest(to: key, in: used).map { "did you mean \(name($0))?" } }
            throw ConfigurationError(
                "\(unknown.map(name).joined(separator: ", ")): unknown setting\(unknown.count > 1 ? "s" : "")"
                    + (hints.isEmpty ? "" : " (\(hints.joined(separator: "; ")))"))
        }
    }
}
