import Foundation
public import Logging

/// A log handler writing one line per record to standard error, either as
/// logfmt-style text or as JSON, with metadata as fields.
public struct StructuredLogHandler: LogHandler {
    /// The line format.
    public enum Format: String, Sendable, CaseIterable {
        /// `2026-11-21T19:56:51.123Z info listening moat.socket=/run/moat.sock`
        case text
        /// `{"ts":"…","level":"info","msg":"listening","moat.socket":"/run/moat.sock"}`
        case json
    }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let format: Format

    /// Creates a handler.
    public init(label: String, level: Logger.Level, format: Format) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = self.metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        let timestamp = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        var line: String
        switch format {
        case .text:
            line = "\(timestamp) \(event.level) \(event.message)"
            for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
                line += " \(key)=\(Self.quoteIfNeeded("\(value)"))"
            }
        case .json:
            var object: [String: String] = ["ts": timestamp, "level": "\(event.level)", "msg": "\(event.message)"]
            object["logger"] = label
            for (key, value) in fields { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    private static func quoteIfNeeded(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) else {
            return value
        }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }
}
