import ArgumentParser
import Foundation
import MoatClient

/// `moatctl user security-log`: a user's sign-ins, failures and security
/// changes, newest first.
struct UserSecurityLogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "security-log",
        abstract: "Show a user's security log (sign-ins, failures, password and session changes), newest first.",
        discussion: """
            With --session or MOAT_SESSION and no --user: the signed-in user's own log. \
            Tenant owners/admins (with their session) and the administrator process read \
            any member's log with --user.
            """)

    @Option(name: .customLong("user"), help: ArgumentHelp("Whose log (us_...); default: the signed-in user.", valueName: "user-id"))
    var userID: String = ""

    @OptionGroup var page: PageOptions
    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let (events, next) = try await options.global.withClient { client in
            try await page.collect { pageSize, pageToken in
                var request = Moat_V1_ListSecurityEventsRequest()
                request.userID = userID
                request.pageSize = pageSize
                request.pageToken = pageToken
                let response = try await client.users.listSecurityEvents(request, options: options.callOptions)
                return (response.events, response.nextPageToken)
            }
        }
        if options.global.json {
            var response = Moat_V1_ListSecurityEventsResponse()
            response.events = events
            response.nextPageToken = next
            return try printJSON(response)
        }
        printTable(
            ["WHEN", "EVENT", "IP", "DEVICE", "BROWSER", "DETAIL"],
            events.map {
                [
                    formatTime($0.createdAtUnix), $0.kind, $0.ip,
                    [$0.deviceType, $0.os].filter { !$0.isEmpty }.joined(separator: " · "), $0.browser, $0.detail,
                ]
            })
        page.reportMore(next)
    }
}
