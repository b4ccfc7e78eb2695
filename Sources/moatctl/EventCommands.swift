import ArgumentParser
import Foundation
import MoatClient
import Synchronization
import SwiftProtobuf

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `moatctl events`: the durable event stream (administrator process only).
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Follow the event stream and manage its consumers (administrator only).",
        subcommands: [EventsTailCommand.self, EventsConsumersCommand.self, EventsDeleteConsumerCommand.self])
}

/// `moatctl events tail`: follow the stream as a named consumer.
struct EventsTailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Follow the event stream with long polls, acknowledging what was printed.",
        discussion: """
            Prints each event (sequence, time, tenant, type, subject and the decoded payload) \
            and acknowledges it after printing, so a consumer name continues where it left \
            off. A new consumer starts with the next event; with --from-start it starts at \
            the oldest retained event. An existing consumer always continues after its \
            cursor. Ctrl-C stops (events printed but not yet acknowledged are shown again \
            next time). Payloads may hold one-time tokens (password resets): treat the \
            output as secret.
            """)

    @Option(name: .long, help: "The consumer name: 1 to 64 characters of a-z, 0-9, '.', '_', '-'.")
    var consumer: String

    @Option(name: .long, help: ArgumentHelp("Only event types starting with this, e.g. 'password.'.", valueName: "prefix"))
    var typePrefix: String = ""

    @Option(name: .customLong("tenant"), help: ArgumentHelp("Only this tenant's events (id or slug).", valueName: "tenant"))
    var tenantFilter: String = ""

    @Flag(name: .long, help: "For a new consumer, start at the oldest retained event.")
    var fromStart = false

    @Option(name: .long, help: "How long each long poll waits, in seconds.")
    var wait: UInt32 = 25

    @Flag(name: .long, help: "Stop when no event arrives within one wait.")
    var once = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (1...3600).contains(wait) else { throw ValidationError("--wait must be 1 to 3600 seconds.") }
    }

    func run() async throws {
        let tail = Task { try await follow() }
        // Ctrl-C cancels the poll in flight; what was printed and not yet
        // acknowledged is delivered again next time (at-least-once).
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT)
        interrupt.setEventHandler { tail.cancel() }
        interrupt.resume()
        defer { interrupt.cancel() }
        do {
            try await tail.value
        } catch where tail.isCancelled {
            return  // Ctrl-C: a clean exit.
        } catch {
            try await perform { throw error }
        }
    }

    private func follow() async throws {
        let client = global.client()
        do {
            try await follow(client)
            await client.close()
        } catch {
            await client.close()
            throw error
        }
    }

    private func follow(_ client: MoatClient) async throws {
        var pollRequest = Moat_V1_PollRequest()
        pollRequest.consumer = consumer
        pollRequest.maxEvents = 100
        pollRequest.waitMs = wait * 1000
        pollRequest.typePrefix = typePrefix
        pollRequest.tenant = tenantFilter
        var pollOptions = global.callOptions()
        // The call must outlive the wait.
        pollOptions.timeout = .seconds(Int64(wait) + 5)

        let existing = try await client.events.listConsumers(options: global.callOptions())
        let isNew = !existing.consumers.contains { $0.name == consumer }
        if isNew, !fromStart {
            // Register, then skip the history: only events from now on.
            var register = pollRequest
            register.waitMs = 0
            register.maxEvents = 1
            _ = try await client.events.poll(register, options: global.callOptions())
            let newest = try await client.events.listConsumers(options: global.callOptions())
            try await ack(client, newest.newestSequence)
        }
        while !Task.isCancelled {
            let response = try await client.events.poll(pollRequest, options: pollOptions)
            for event in response.events { try printEvent(event) }
            if response.lastSequenceScanned > response.cursor { try await ack(client, response.lastSequenceScanned) }
            if once, response.events.isEmpty { return }
        }
    }

    private func ack(_ client: MoatClient, _ sequence: Int64) async throws {
        var request = Moat_V1_AckRequest()
        request.consumer = consumer
        request.sequence = sequence
        _ = try await client.events.ack(request, options: global.callOptions())
    }

    private func printEvent(_ event: Moat_V1_Event) throws {
        if global.json {
            try printJSON(EventJSON(event))
        } else {
            print(
                "#\(event.sequence)  \(formatMilliseconds(event.createdAtUnixMs))  \(displayText(event.tenantID))  "
                    + "\(displayText(event.type))  \(displayText(event.subject))")
            print("  " + displayText(decodedPayload(event)))
        }
        fflush(nil)  // one event at a time, even into a pipe
    }
}

/// An event with its payload decoded, for `--json`: the Event message's
/// JSON, `payload` replaced by the decoded message (when its type is known).
private struct EventJSON {
    let event: Moat_V1_Event
    init(_ event: Moat_V1_Event) { self.event = event }
}

private func printJSON(_ wrapped: EventJSON) throws {
    var options = JSONEncodingOptions()
    options.preserveProtoFieldNames = true
    var event = wrapped.event
    guard let type = eventPayloadTypes[event.payloadType],
        let payload = try? type.init(serializedBytes: [UInt8](event.payload)),
        let payloadJSON = try? payload.jsonString(options: options)
    else { return try printJSON(event) }
    event.payload = Data()
    var text = try event.jsonString(options: options)
    // Splice the decoded payload in as an object.
    if text.hasSuffix("}") {
        text.removeLast()
        text += (text.hasSuffix("{") ? "" : ",") + "\"payload_decoded\":\(payloadJSON)}"
    }
    print(text)
}

/// The payload messages moatctl can decode, by full name.
let eventPayloadTypes: [String: any SwiftProtobuf.Message.Type] = {
    let types: [any SwiftProtobuf.Message.Type] = [
        Moat_V1_TenantCreated.self, Moat_V1_TenantPolicyUpdated.self, Moat_V1_UserCreated.self,
        Moat_V1_UserStatusChanged.self, Moat_V1_PasswordChanged.self, Moat_V1_PasswordResetRequested.self,
        Moat_V1_PasswordReset.self, Moat_V1_PasswordResetUnknownEmail.self, Moat_V1_SessionRevoked.self,
        Moat_V1_TwoFactorEnabled.self, Moat_V1_TwoFactorDisabled.self, Moat_V1_TwoFactorRecoveryCodesRegenerated.self,
        Moat_V1_TwoFactorRecoveryCodeUsed.self, Moat_V1_AccountDeletionScheduled.self, Moat_V1_AccountRestored.self,
        Moat_V1_AccountPurged.self, Moat_V1_TenantDeletionScheduled.self, Moat_V1_TenantDeletionCancelled.self,
        Moat_V1_TenantPurged.self, Moat_V1_TeamCreated.self, Moat_V1_TeamRenamed.self, Moat_V1_TeamDeleted.self,
        Moat_V1_TeamInvitationCreated.self, Moat_V1_TeamInvitationRevoked.self, Moat_V1_TeamMemberAdded.self,
        Moat_V1_TeamMemberRoleChanged.self, Moat_V1_TeamMemberRemoved.self, Moat_V1_TeamOwnershipTransferred.self,
    ]
    return Dictionary(uniqueKeysWithValues: types.map { ($0.protoMessageName, $0) })
}()

/// The payload as one line of protobuf text format, or base64 when its type
/// is unknown to this build.
func decodedPayload(_ event: Moat_V1_Event) -> String {
    guard let type = eventPayloadTypes[event.payloadType],
        let message = try? type.init(serializedBytes: [UInt8](event.payload))
    else {
        let name = event.payloadType.isEmpty ? "unknown payload" : event.payloadType
        return "\(name) (\(event.payload.count) bytes): \(event.payload.base64EncodedString())"
    }
    let text = message.textFormatString().split(separator: "\n").joined(separator: " ")
    return "\(event.payloadType) { \(text) }"
}

/// Unix milliseconds as local `yyyy-MM-dd HH:mm:ss.SSS`.
func formatMilliseconds(_ unixMilliseconds: Int64) -> String {
    guard unixMilliseconds > 0 else { return "-" }
    let seconds = unixMilliseconds / 1000
    let parts = Calendar.current.dateComponents(
        [.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    return String(
        format: "%04d-%02d-%02d %02d:%02d:%02d.%03d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0,
        parts.hour ?? 0, parts.minute ?? 0, parts.second ?? 0, Int(unixMilliseconds % 1000))
}

/// `moatctl events consumers`: every consumer, its cursor and lag.
struct EventsConsumersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consumers", abstract: "List the event stream's consumers with their cursor and lag.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let response = try await global.withClient { client in
            try await client.events.listConsumers(options: global.callOptions())
        }
        if global.json { return try printJSON(response) }
        printTable(
            ["NAME", "CURSOR", "LAG", "LAST POLL", "LAST ACK", "CREATED"],
            response.consumers.map {
                [
                    $0.name, String($0.cursor), String($0.lag), formatAgo($0.lastPollAtUnix),
                    formatAgo($0.lastAckAtUnix), formatTime($0.createdAtUnix),
                ]
            })
        printError("newest sequence: \(response.newestSequence)")
    }
}

/// `moatctl events delete-consumer`: forget a consumer.
struct EventsDeleteConsumerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete-consumer",
        abstract: "Delete a consumer, so it no longer holds back retention.",
        discussion: "A later poll with the same name registers it again, from the oldest retained event.")

    @Argument(help: ArgumentHelp("The consumer's name.", valueName: "name"))
    var name: String

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var request = Moat_V1_DeleteConsumerRequest()
        request.consumer = name
        let response = try await global.withClient { client in
            try await client.events.deleteConsumer(request, options: global.callOptions())
        }
        if global.json { return try printJSON(response) }
        print("deleted consumer \(displayText(name))")
    }
}
