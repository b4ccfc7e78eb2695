import ArgumentParser
import Foundation
import Logging
import MoatRPC
import MoatServer

/// moatd: the Moat daemon.
@main
struct Moatd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moatd",
        abstract: "Moat, the account-security daemon.",
        discussion: """
            With no flags moatd runs on its embedded default: data directory ./moat-data \
            (created if missing) and the socket ./moat-data/moat.sock (mode 0660). \
            A TOML file (--config) overrides the defaults, --set overrides any single \
            setting, and the dedicated flags override both. deploy/moatd.toml lists \
            every setting with its default.
            """,
        version: MoatVersion.current)

    @Option(name: .long, help: "A TOML configuration file.")
    var config: String?

    @Option(name: .long, help: "The data directory (default ./moat-data).")
    var dataDir: String?

    @Option(name: .long, help: "The socket path (default <data-dir>/moat.sock).")
    var socket: String?

    @Option(name: .long, help: "trace, debug, info, notice, warning, error or critical (default info).")
    var logLevel: String?

    @Option(name: .long, help: "text or json (default text).")
    var logFormat: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override one setting, e.g. --set limits.max_connections=64.", valueName: "key=value"))
    var overrides: [String] = []

    @Flag(name: .long, help: "Print the configuration in effect as TOML and exit.")
    var printConfig = false

    @Flag(
        name: .long,
        help: "Validate the configuration (file, --set and flags) and exit: 0 if it is valid, 2 with the key and the reason if not.")
    var checkConfig = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Restore a backup (moatctl backup) as the database of an empty data directory, then exit. Copy the master key into the data directory as well.",
            valueName: "file"))
    var restore: String?

    @Flag(
        name: .long,
        help: "Copy this data directory's stopped SQLite deployment into the empty PostgreSQL database of store.postgres_url (password from store.postgres_password_file or the libpq environment), then exit.")
    var copyToPostgres = false

    func run() async throws {
        var settings: MoatConfiguration
        do {
            settings = try ConfigurationLoader.load(
                file: config, overrides: overrides,
                flags: .init(dataDirectory: dataDir, socketPath: socket, logLevel: logLevel, logFormat: logFormat))
        } catch let error as ConfigurationError where checkConfig {
            let key = error.key.map { "key \($0): " } ?? ""
            FileHandle.standardError.write(Data("moatd: configuration invalid: \(key)\(error.reason)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("moatd: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if checkConfig {
            print("moatd: configuration ok\(config.map { " (\($0))" } ?? "")")
            return
        }
        if let restore {
            do {
                let result = try Restore.restore(backup: restore, dataDirectory: settings.dataDirectory)
                print("restored \(restore) into \(result.databasePath)")
                print("size                 \(result.sizeBytes) bytes")
                print("last event sequence  \(result.lastEventSequence)")
                print("key fingerprint      \(result.keyFingerprint ?? "none recorded")")
                if !result.keyPresent {
                    print(
                        "master.key           missing: copy the key with fingerprint \(result.keyFingerprint ?? "?") into \(settings.dataDirectory) (mode 0600) before starting moatd"
                    )
                }
            } catch {
                FileHandle.standardError.write(Data("moatd: restore refused: \(error)\n".utf8))
                throw ExitCode(1)
            }
            return
        }
        if copyToPostgres {
            var logger = Logger(label: "moatd")
            logger.logLevel = .warning
            do {
                let report = try await CopyToPostgres.run(configuration: settings, logger: logger)
                print("copied \(settings.dataDirectory) into PostgreSQL")
                for table in report.source.keys.sorted() {
                    print("\(table.padding(toLength: 24, withPad: " ", startingAt: 0)) \(report.source[table] ?? 0) rows")
                }
                print("event sequence           \(report.eventSequence)")
                print("start moatd with store.backend = \"postgres\" and the same master.key")
            } catch {
                FileHandle.standardError.write(Data("moatd: copy refused: \(error)\n".utf8))
                throw ExitCode(1)
            }
            return
        }
        if printConfig {
            print(ConfigurationLoader.render(settings), terminator: "")
            return
        }
        // Before anything records (the store's instruments are made on first use).
        MetricsExporter.bootstrap()
        let level = settings.log.level
        let format = settings.log.format
        LoggingSystem.bootstrap { label in
            StructuredLogHandler(label: label, level: level, format: format)
        }
        let logger = Logger(label: "moatd")
        do {
            if let fd = try SocketActivation.takeListeningSocket() {
                settings.socket.inheritedDescriptor = fd
                if let path = SocketActivation.boundPath(of: fd) { settings.socket.path = path }
            }
        } catch {
            logger.critical("cannot use the socket systemd passed", metadata: ["moat.error": "\(error)"])
            throw ExitCode(1)
        }
        if settings.allowWeakHashing {
            logger.warning(
                "weak password hashing allowed by hashing.allow_weak; never use this in production",
                metadata: [
                    "moat.argon2.memory_kib": "\(settings.hashing.parameters.memoryKiB)",
                    "moat.argon2.iterations": "\(settings.hashing.parameters.iterations)",
                ])
        }
        do {
            let daemon = try await MoatDaemon.open(configuration: settings, logger: logger)
            logger.info(
                "starting", metadata: ["moat.version": "\(MoatVersion.current)", "moat.data_dir": "\(settings.dataDirectory)"])
            try await daemon.run()
        } catch {
            logger.critical("cannot run", metadata: ["moat.error": "\(error)"])
            throw ExitCode(1)
        }
    }
}
