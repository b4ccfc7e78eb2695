import ArgumentParser
import Foundation
import MoatClient

/// `moatctl backup`: an online backup written by moatd.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Take a consistent online backup of the database (administrators).",
        discussion: """
            moatd writes the file itself (SQLite VACUUM INTO on its writer thread, mode 0600, fsynced), \
            so FILE must be a path moatd can create, on moatd's host; it must not exist. The master key \
            is not in the backup: keep a copy of master.key apart from it. Restore with \
            moatd --restore FILE --data-dir EMPTY_DIR.
            """)

    @Option(name: .long, help: ArgumentHelp("The backup file to create.", valueName: "file"))
    var out: String

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var request = Moat_V1_BackupRequest()
        request.path = out.hasPrefix("/") ? out : FileManager.default.currentDirectoryPath + "/" + out
        let response = try await global.withClient { client in
            try await client.operations.backup(request, options: global.callOptions())
        }
        if global.json { return try printJSON(response) }
        printFields([
            ("backup", response.path),
            ("size", "\(response.sizeBytes) bytes"),
            ("last event sequence", String(response.lastEventSequence)),
            ("took", "\(response.durationMs) ms"),
        ])
    }
}

/// `moatctl key`: master-key rotation.
struct KeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Rotate the master key, or show where it stands (administrators).",
        subcommands: [KeyRotateCommand.self, KeyStatusCommand.self])
}

/// `moatctl key rotate`: introduce a new master key and re-seal under it.
struct KeyRotateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Generate a new master key and re-seal every secret under it while moatd serves.",
        discussion: """
            The new key is in use when this returns; moatd re-seals stored secrets in batches in the \
            background and deletes the old key file once nothing is sealed under it. --wait follows \
            it to the end. Back up the new master.key afterwards.
            """)

    @Flag(name: .long, help: "Wait until the old key is retired.")
    var wait = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let response = try await global.withClient { client in
            try await client.operations.rotateKey(Moat_V1_RotateKeyRequest(), options: global.callOptions())
        }
        var status = response.status
        if wait {
            while !status.retiringKeyID.isEmpty {
                try await Task.sleep(for: .milliseconds(200))
                status = try await global.withClient { client in
                    try await client.operations.keyStatus(Moat_V1_KeyStatusRequest(), options: global.callOptions())
                }
            }
        }
        if global.json { return try printJSON(status) }
        printKeyStatus(status)
    }
}

/// `moatctl key status`: the current key and a rotation in progress.
struct KeyStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the current master key and any rotation in progress.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let status = try await global.withClient { client in
            try await client.operations.keyStatus(Moat_V1_KeyStatusRequest(), options: global.callOptions())
        }
        if global.json { return try printJSON(status) }
        printKeyStatus(status)
    }
}

private func printKeyStatus(_ status: Moat_V1_KeyStatusResponse) {
    printFields([
        ("current key", status.currentKeyID),
        ("sealed under it", String(status.sealedUnderCurrent)),
        ("retiring key", status.retiringKeyID),
        ("still sealed under it", status.retiringKeyID.isEmpty ? "" : String(status.sealedUnderRetiring)),
        ("retired keys", status.retiredKeyIds.joined(separator: ", ")),
    ])
}

/// `moatctl metrics`: the Prometheus text moatd exports.
struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the daemon's metrics in the Prometheus text format (administrators).",
        discussion: "The same text the metrics listener (metrics.listen) serves on GET /metrics.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let response = try await global.withClient { client in
            try await client.operations.metrics(Moat_V1_MetricsRequest(), options: global.callOptions())
        }
        if global.json { return try printJSON(response) }
        print(response.text, terminator: "")
    }
}
