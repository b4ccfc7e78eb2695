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

    func run() async throws {
        var settings: MoatConfiguration
        do {
            settings = try ConfigurationLoader.load(
                file: config, overrides: overrides,
                flags: .init(dataDirectory: dataDir, socketPath: socket, logLevel: logLevel, logFormat: logFormat))
        } catch {
            FileHandle.standardError.write(Data("moatd: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if printConfig {
            print(ConfigurationLoader.render(settings), terminator: "")
            return
        }
        let level = settings.log.level
        let format = settings.log.format
        LoggingSystem.bootstrap { label in
            StructuredLogHandler(label: label, level: level, format: format)
        }
        let logger = Logger(label: "moatd")
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
