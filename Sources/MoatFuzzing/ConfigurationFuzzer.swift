import Foundation
import MoatServer

/// Fuzzes the TOML configuration parser and the loader behind it: the input
/// as a whole document, and each of its lines as a `--set key=value`.
///
/// Invariants: parsing and loading either succeed or throw their own error
/// types (no crash, no other error); a document that parses parses again to
/// the same value; a configuration that loads prints (`--print-config`) a
/// document that loads to a configuration printing the same.
public enum ConfigurationFuzzer {
    /// Where the printed configuration is written to be loaded again.
    static let scratchFile = NSTemporaryDirectory() + "/moat-fuzz-config-\(getpid()).toml"

    /// Runs one input.
    public static func run(_ data: [UInt8]) throws(FuzzViolation) {
        let text = String(decoding: data, as: UTF8.self)
        if let document = try? TOMLDocument.parse(text) {
            guard (try? TOMLDocument.parse(text)) == document else { throw FuzzViolation("parsing is not repeatable") }
        }
        let overrides = text.split(separator: "\n", omittingEmptySubsequences: true).prefix(32).map(String.init)
        let configuration: MoatConfiguration
        do {
            configuration = try ConfigurationLoader.load(file: nil, overrides: overrides)
        } catch is ConfigurationError {
            return
        } catch {
            throw FuzzViolation("the loader threw \(type(of: error)), not ConfigurationError: \(error)")
        }
        let printed = ConfigurationLoader.render(configuration)
        let reloaded: MoatConfiguration
        do {
            try printed.write(toFile: scratchFile, atomically: false, encoding: .utf8)
            reloaded = try ConfigurationLoader.load(file: scratchFile)
        } catch {
            throw FuzzViolation("the printed configuration does not load: \(error)\n\(printed)")
        }
        // Compared as printed: a derived default (the socket inside
        // data_dir) prints as the explicit value it stands for.
        let again = ConfigurationLoader.render(reloaded)
        guard again == printed else {
            throw FuzzViolation("the printed configuration loads to another configuration:\n\(printed)\n---\n\(again)")
        }
    }
}
