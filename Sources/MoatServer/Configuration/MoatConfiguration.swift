public import Logging
public import MoatCore
import MoatCrypto
public import MoatTransport

/// Everything moatd can be told. Each default here is the documented one
/// (deploy/moatd.toml lists them all); a TOML file and flags override them.
public struct MoatConfiguration: Sendable, Equatable {
    /// The data directory: the database, the key file and, by default, the
    /// socket. Created (mode 0750) if missing. Default `./moat-data`.
    public var dataDirectory: String = "./moat-data"

    /// The listening socket.
    public var socket = Socket()

    /// Who may connect and who is an administrator.
    public var access = Access()

    /// Transport limits.
    public var limits = TransportLimits()

    /// Logging.
    public var log = Log()

    /// The database.
    public var store = Store()

    /// Several instances on one PostgreSQL.
    public var cluster = Cluster()

    /// Password hashing.
    public var hashing = HashingConfiguration()

    /// `hashing.allow_weak`: accept Argon2id parameters below OWASP's
    /// minimum (benchmarks only; moatd logs a warning on every start).
    /// Default false.
    public var allowWeakHashing = false

    /// Account rules that are not per-tenant policy.
    public var accounts = AccountConfiguration()

    /// Session validation and housekeeping.
    public var sessions = Sessions()

    /// The event stream: long polls and retention.
    public var events = Events()

    /// Master-key rotation.
    public var keys = Keys()

    /// The metrics listener.
    public var metrics = MetricsSettings()

    /// Metrics settings.
    public struct MetricsSettings: Sendable, Equatable {
        /// `metrics.listen`: where `GET /metrics` is served, `unix:/path` or
        /// `127.0.0.1:PORT`; nil (the default, `""`) serves no HTTP at all.
        public var listen: MetricsAddress?
        public init() {}
    }

    /// Master-key settings.
    public struct Keys: Sendable, Equatable {
        /// Secrets re-sealed per write transaction during a rotation.
        /// Default 100.
        public var rotationBatchSize = 100
        public init() {}
    }

    /// Event-stream settings.
    public struct Events: Sendable, Equatable {
        /// Acknowledged events are deleted once older than this. Default 7.
        public var retentionDays = 7
        /// How often retention runs. Default 300.
        public var pruneIntervalSeconds = 300
        /// The longest a Poll waits for new events, whatever it asks.
        /// Default 30.
        public var maxPollWaitSeconds = 30
        public init() {}

        /// The domain settings these make.
        public var stream: EventStreamConfiguration {
            var stream = EventStreamConfiguration()
            stream.retentionSeconds = Int64(retentionDays) * 86400
            stream.maxPollWaitMilliseconds = Int64(maxPollWaitSeconds) * 1000
            return stream
        }
    }

    /// Session settings (idle timeout and lifetime are tenant policy).
    public struct Sessions: Sendable, Equatable {
        /// Live sessions cached for Validate. Default 100000.
        public var cacheEntries = 100_000
        /// How often last-active times kept in memory are written; a crash
        /// loses at most this much of them (never a revocation). Default 5.
        public var lastActiveFlushSeconds = 5
        /// Activity closer than this to the recorded last-active time is not
        /// recorded again (the idle timeout is days; rewriting every row on
        /// every flush is not worth it). Default 60.
        public var lastActiveGranularitySeconds = 60
        /// How often ended sessions are deleted. Default 3600.
        public var cleanupIntervalSeconds = 3600
        /// Ended (revoked or expired) sessions are kept this long. Default 7.
        public var retentionDays = 7
        public init() {}
    }

    /// Several moatd on one PostgreSQL (`[cluster]`); no effect on SQLite.
    public struct Cluster: Sendable, Equatable {
        /// The fencing bound in milliseconds (`cluster.fence_ms`, 10 to
        /// 60000). Default 250. A revoking call returns once every live
        /// instance applied it, or after this long; an instance that has not
        /// confirmed it is current within it answers Validate from the
        /// database, not its caches.
        public var fenceMilliseconds = 250
        public init() {}
    }

    /// Database settings.
    public struct Store: Sendable, Equatable {
        /// SQLite `synchronous`: `full` (default; every commit survives a
        /// power cut) or `normal` (WAL: a power cut may lose the last
        /// commits, never corrupts).
        public var synchronous: Synchronous = .full
        /// Reader connections. Default 4.
        public var readers = 4
        /// Which database holds the state: `sqlite` (default; a file in the
        /// data directory) or `postgres` (shared by any number of moatd
        /// instances).
        public var backend: Backend = .sqlite
        /// The PostgreSQL libpq connection URI (`store.postgres_url`);
        /// required with the `postgres` backend. Holds no password: that
        /// comes from ``postgresPasswordFile`` or the libpq environment.
        public var postgresURL: String?
        /// A file whose first line is the PostgreSQL password
        /// (`store.postgres_password_file`); never on the command line.
        public var postgresPasswordFile: String?
        /// PostgreSQL connections in the pool (`store.postgres_connections`). Default 8.
        public var postgresConnections = 8

        public enum Synchronous: String, Sendable, Equatable { case full, normal }
        /// The store backends.
        public enum Backend: String, Sendable, Equatable { case sqlite, postgres }
        public init() {}
    }

    /// Socket settings.
    public struct Socket: Sendable, Equatable {
        /// The socket file; nil means `<data directory>/moat.sock`.
        public var path: String?
        /// The socket file's mode. Default 0660.
        public var mode: UInt32 = 0o660
        /// A listening socket systemd passed (`LISTEN_FDS`); not a setting:
        /// moatd fills it in at start. When set, moatd serves it and never
        /// creates, chmods or removes the socket file.
        public var inheritedDescriptor: Int32?
        public init() {}
    }

    /// Caller access. Root and the daemon's own uid are always
    /// administrators; the lists add to that.
    public struct Access: Sendable, Equatable {
        /// Uids that may connect (besides administrators).
        public var allowUIDs: [UInt32] = []
        /// Gids that may connect.
        public var allowGIDs: [UInt32] = []
        /// Extra administrator uids.
        public var adminUIDs: [UInt32] = []
        /// Administrator gids.
        public var adminGIDs: [UInt32] = []
        public init() {}
    }

    /// Log settings.
    public struct Log: Sendable, Equatable {
        /// The lowest level written. Default `info`.
        public var level: Logger.Level = .info
        /// `text` or `json`. Default `text`.
        public var format: StructuredLogHandler.Format = .text
        public init() {}
    }

    /// The defaults.
    public init() {}

    /// The socket path in effect.
    public var socketPath: String {
        socket.path ?? (dataDirectory.hasSuffix("/") ? dataDirectory : dataDirectory + "/") + "moat.sock"
    }

    /// The access policy in effect for a daemon running as `daemonUID`.
    public func accessPolicy(daemonUID: UInt32) -> AccessPolicy {
        var policy = AccessPolicy.default(daemonUID: daemonUID)
        policy.allowedUIDs.formUnion(access.allowUIDs)
        policy.allowedGIDs.formUnion(access.allowGIDs)
        policy.adminUIDs.formUnion(access.adminUIDs)
        policy.adminGIDs.formUnion(access.adminGIDs)
        return policy
    }
}
