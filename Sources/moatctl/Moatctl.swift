import ArgumentParser
import Foundation
import MoatClient
import SwiftProtobuf

/// moatctl: the operator and developer CLI.
@main
struct Moatctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moatctl",
        abstract: "Operate a Moat daemon over its socket.",
        version: MoatVersion.current,
        subcommands: [
            HealthCommand.self,
            TenantCommand.self,
            UserCommand.self,
            SignInCommand.self,
            SignOutCommand.self,
            PasswdCommand.self,
            ResetCommand.self,
            SessionsCommand.self,
            TwoFactorCommand.self,
            AccountCommand.self,
            EventsCommand.self,
            TeamCommand.self,
            InviteCommand.self,
            BackupCommand.self,
            KeyCommand.self,
            MetricsCommand.self,
        ])

    /// ArgumentParser's entry point, except that usage errors exit 2 (not
    /// EX_USAGE, 64) and ``CommandFailure`` prints as `moatctl: message`.
    static func main() async {
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CommandFailure {
            printError("moatctl: \(failure.message)")
            exit(withError: ExitCode(failure.exitCode))
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                exit(withError: ExitCode(CommandFailure.usageExitCode))
            }
            exit(withError: error)
        }
    }
}

/// A failure moatctl reports itself, as `moatctl: message`.
struct CommandFailure: Error, CustomStringConvertible {
    /// Exit status of a command line that cannot work as given.
    static let usageExitCode: Int32 = 2

    var message: String
    var exitCode: Int32

    var description: String { message }

    /// The command line cannot work as given (exit 2).
    static func usage(_ message: String) -> CommandFailure {
        CommandFailure(message: message, exitCode: usageExitCode)
    }

    /// The command ran and failed (exit 1).
    static func failed(_ message: String) -> CommandFailure {
        CommandFailure(message: message, exitCode: 1)
    }
}

/// Writes one line to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line.hasSuffix("\n") ? line : line + "\n").utf8))
}

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "The daemon's socket (default $MOAT_SOCKET or ./moat-data/moat.sock).")
    var socket: String?

    @Flag(name: .long, help: "Print the response as JSON.")
    var json = false

    @Option(name: .long, help: "Call timeout in seconds.")
    var timeout: Double = 10

    var socketPath: String {
        socket ?? ProcessInfo.processInfo.environment["MOAT_SOCKET"] ?? "./moat-data/moat.sock"
    }

    func client() -> MoatClient { MoatClient(socketPath: socketPath) }

    func callOptions(tenant: String = "", authorization: String = "") -> CallOptions {
        CallOptions(
            tenant: tenant, authorization: authorization, timeout: .milliseconds(Int64(timeout * 1000)),
            metadata: ["user-agent": "moatctl/\(MoatVersion.current)"])
    }

    mutating func validate() throws {
        guard timeout.isFinite, timeout > 0, timeout <= 86400 else {
            throw ValidationError("--timeout must be a number of seconds above 0 (at most 86400).")
        }
    }

    /// Connects, runs `body` through ``perform(_:)``, and closes the
    /// connection whatever happened.
    func withClient<T>(_ body: (MoatClient) async throws -> T) async throws -> T {
        let client = client()
        do {
            let result = try await perform { try await body(client) }
            await client.close()
            return result
        } catch {
            await client.close()
            throw error
        }
    }
}

/// Runs a call, printing an RPC failure as `moatctl: CODE (REASON): message`
/// and exiting non-zero.
func perform<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as RPCError {
        printError("moatctl: \(error)")
        for (key, value) in error.details.sorted(by: { $0.key < $1.key }) {
            printError("  \(key): \(displayText(value))")
        }
        throw ExitCode(1)
    }
}

/// Prints a message as proto3 JSON with the .proto field names.
func printJSON(_ message: some SwiftProtobuf.Message) throws {
    var options = JSONEncodingOptions()
    options.preserveProtoFieldNames = true
    options.alwaysPrintEnumsAsInts = false
    print(try message.jsonString(options: options))
}

/// Prints aligned `key  value` rows; an empty value shows as `-`, and
/// control characters in values are escaped (see ``displayText(_:)``).
func printFields(_ rows: [(String, String)]) {
    let width = rows.map(\.0.count).max() ?? 0
    for (key, value) in rows {
        print(key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + (value.isEmpty ? "-" : displayText(value)))
    }
}

struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health", abstract: "Check that the daemon is serving (exit 0 if SERVING).")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let client = global.client()
        let response = try await perform { try await client.health.check(options: global.callOptions()) }
        await client.close()
        if global.json {
            try printJSON(response)
        } else {
            printFields([
                ("status", servingName(response.status)),
                ("version", response.version),
                ("uptime", formatDuration(seconds: response.uptimeSeconds)),
                ("socket", global.socketPath),
            ])
        }
        if response.status != .serving { throw ExitCode(1) }
    }
}

/// `93784` -> `1d 2h 3m 4s`.
func formatDuration(seconds: UInt64) -> String {
    let parts: [(UInt64, String)] = [(86400, "d"), (3600, "h"), (60, "m"), (1, "s")]
    var rest = seconds
    var out: [String] = []
    for (unit, suffix) in parts where rest >= unit || (unit == 1 && out.isEmpty) {
        out.append("\(rest / unit)\(suffix)")
        rest %= unit
    }
    return out.joined(separator: " ")
}

/// The wire name of a serving status.
func servingName(_ status: Moat_V1_CheckResponse.ServingStatus) -> String {
    switch status {
    case .serving: "SERVING"
    case .notServing: "NOT_SERVING"
    default: "UNKNOWN"
    }
}
