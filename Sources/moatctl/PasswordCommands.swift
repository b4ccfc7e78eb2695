import ArgumentParser
import Foundation
import MoatClient

/// `moatctl passwd`: change the signed-in user's password.
struct PasswdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd",
        abstract: "Change the signed-in user's password (session from --session or MOAT_SESSION).",
        discussion: """
            Asks for the current password, then the new one twice, without echo. With \
            --password-stdin, reads the current password from the first line of standard \
            input and the new one from the second.
            """)

    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption

    @Flag(name: .long, help: "Sign out every other session of the user.")
    var revokeOthers = false

    @Flag(name: .long, help: "Read the current and new password from two lines of standard input.")
    var passwordStdin = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try session.required()
    }

    func run() async throws {
        let token = try session.required()
        var request = Moat_V1_ChangePasswordRequest()
        request.revokeOtherSessions = revokeOthers
        if passwordStdin {
            let lines = try Secrets.readStdin(["current password", "new password"], flag: "--password-stdin")
            request.currentPassword = lines[0]
            request.newPassword = lines[1]
        } else {
            request.currentPassword = try Secrets.prompt("Current password: ")
            request.newPassword = try Secrets.promptNew("New password: ", again: "Repeat the new password: ")
        }
        let response = try await global.withClient { client in
            try await client.users.changePassword(
                request, options: global.callOptions(tenant: tenant.value, authorization: token))
        }
        if global.json { return try printJSON(response) }
        print("password changed" + revokedNote(response.revokedSessions, other: true))
    }
}

/// `moatctl reset`: the forgotten-password flow.
struct ResetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Reset a forgotten password: request a token, then complete with it.",
        subcommands: [ResetRequestCommand.self, ResetCompleteCommand.self])
}

/// `moatctl reset request`: issue a reset token (delivered as an event).
struct ResetRequestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Request a password reset for an email.",
        discussion: """
            Always answers OK, account or not. If the account exists, a single-use token \
            valid for one hour goes out in a password_reset.requested event.
            """)

    @OptionGroup var tenant: TenantOption

    @Option(name: .long, help: "The account's email.")
    var email: String

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var request = Moat_V1_RequestPasswordResetRequest()
        request.email = email
        let response = try await global.withClient { client in
            try await client.users.requestPasswordReset(request, options: global.callOptions(tenant: tenant.value))
        }
        if global.json { return try printJSON(response) }
        print("requested: if \(email) has an account, its reset token is in a password_reset.requested event")
    }
}

/// `moatctl reset complete`: set a new password with a reset token.
struct ResetCompleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "complete",
        abstract: "Set a new password with a reset token; revokes every session.",
        discussion: """
            The new password is asked for twice without echo, or read from standard input \
            with --password-stdin. With both --token-stdin and --password-stdin, the first \
            line of standard input is the token and the second the password.
            """)

    @OptionGroup var tenant: TenantOption

    @Option(name: .long, help: ArgumentHelp("The reset token (single-use).", valueName: "token"))
    var token: String?

    @Flag(name: .long, help: "Read the reset token from standard input.")
    var tokenStdin = false

    @Flag(name: .long, help: "Read the new password from standard input instead of prompting.")
    var passwordStdin = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        switch (token, tokenStdin) {
        case (nil, false): throw ValidationError("Missing '--token <token>' or '--token-stdin'.")
        case (.some, true): throw ValidationError("Give '--token <token>' or '--token-stdin', not both.")
        case (.some(let token), false) where token.isEmpty: throw ValidationError("The token is empty.")
        default: break
        }
    }

    func run() async throws {
        var request = Moat_V1_ResetPasswordRequest()
        switch (tokenStdin, passwordStdin) {
        case (true, true):
            let lines = try Secrets.readStdin(["token", "new password"], flag: "--token-stdin --password-stdin")
            request.token = lines[0].trimmingCharacters(in: .whitespaces)
            request.newPassword = lines[1]
        case (true, false):
            request.token = try Secrets.readStdin("token", flag: "--token-stdin")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            request.newPassword = try Secrets.promptNew("New password: ", again: "Repeat the new password: ")
        case (false, true):
            request.token = token ?? ""
            request.newPassword = try Secrets.readStdin("password", flag: "--password-stdin")
        case (false, false):
            request.token = token ?? ""
            request.newPassword = try Secrets.promptNew("New password: ", again: "Repeat the new password: ")
        }
        let response = try await global.withClient { client in
            try await client.users.resetPassword(request, options: global.callOptions(tenant: tenant.value))
        }
        if global.json { return try printJSON(response) }
        print("password reset" + revokedNote(response.revokedSessions, other: false))
    }
}

/// `; 2 other sessions signed out`, or nothing for none.
private func revokedNote(_ count: UInt32, other: Bool) -> String {
    guard count > 0 else { return "" }
    return "; \(count)\(other ? " other" : "") session\(count == 1 ? "" : "s") signed out"
}
