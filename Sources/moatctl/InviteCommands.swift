import ArgumentParser
import Foundation
import MoatClient

/// `moatctl invite`: team invitations.
struct InviteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invite",
        abstract: "Invite people to teams, list and revoke invitations, accept one.",
        discussion: """
            create, list and revoke run as the session's user (a team admin or owner) or the \
            administrator process. The invitation token goes to the mail service in a \
            team.invitation_created event, never to the inviter.
            """,
        subcommands: [
            InviteCreateCommand.self, InviteListCommand.self, InviteRevokeCommand.self, InviteAcceptCommand.self,
        ])
}

/// `moatctl invite create`.
struct InviteCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Invite an email to a team (valid 7 days; replaces a pending invitation of that email).")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @Option(name: .long, help: "The invitee's email.")
    var email: String

    @Option(name: .long, help: "The team role they get (only an owner may invite an owner).")
    var role: TeamRoleArgument = .member

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let invitation = try await options.global.withClient { client in
            try await client.teams.invite(
                .with {
                    $0.teamID = teamID
                    $0.email = email
                    $0.role = role.role
                }, options: options.callOptions)
        }
        if options.global.json { return try printJSON(invitation) }
        printFields(invitationFields(invitation))
    }
}

/// `moatctl invite list`.
struct InviteListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List a team's pending invitations, newest first.")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let response = try await options.global.withClient { client in
            try await client.teams.listInvitations(.with { $0.teamID = teamID }, options: options.callOptions)
        }
        if options.global.json { return try printJSON(response) }
        printTable(
            ["ID", "EMAIL", "ROLE", "INVITED BY", "CREATED", "EXPIRES"],
            response.invitations.map {
                [
                    $0.id, displayText($0.email), teamRoleName($0.role),
                    $0.invitedByUserID.isEmpty ? "(administrator)" : $0.invitedByUserID, formatTime($0.createdAtUnix),
                    formatTime($0.expiresAtUnix),
                ]
            })
    }
}

/// `moatctl invite revoke`.
struct InviteRevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a pending invitation.")

    @Argument(help: ArgumentHelp("The invitation's id (iv_...).", valueName: "invitation-id"))
    var invitationID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let response = try await options.global.withClient { client in
            try await client.teams.revokeInvitation(.with { $0.invitationID = invitationID }, options: options.callOptions)
        }
        if options.global.json { return try printJSON(response) }
        print("revoked \(invitationID)")
    }
}

/// `moatctl invite accept`.
struct InviteAcceptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept",
        abstract: "Accept an invitation: with a session as the invited user, or by creating the account.",
        discussion: """
            The token is read from standard input with --token-stdin, or prompted for without \
            echo. With --session or MOAT_SESSION the session's user (who must have the invited \
            email) joins. Without a session the account is created: the password is asked for \
            twice without echo, or read with --password-stdin (with both flags, standard input \
            holds the token, then the password, one a line).
            """)

    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption

    @Flag(name: .long, help: "Read the invitation token from standard input.")
    var tokenStdin = false

    @Flag(name: .long, help: "Read the new account's password from standard input (no session only).")
    var passwordStdin = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if passwordStdin, session.token != nil {
            throw ValidationError("--password-stdin creates an account; with a session no password is needed.")
        }
    }

    func run() async throws {
        var request = Moat_V1_AcceptInvitationRequest()
        let signedIn = session.token != nil
        switch (tokenStdin, passwordStdin) {
        case (true, true):
            let lines = try Secrets.readStdin(["token", "password"], flag: "--token-stdin --password-stdin")
            request.token = lines[0].trimmingCharacters(in: .whitespaces)
            request.password = lines[1]
        case (true, false):
            request.token = try Secrets.readStdin("token", flag: "--token-stdin")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        case (false, _):
            request.token = try Secrets.prompt("Invitation token: ", stdinFlag: "--token-stdin")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if passwordStdin { request.password = try Secrets.readStdin("password", flag: "--password-stdin") }
        }
        if !signedIn, request.password.isEmpty {
            request.password = try Secrets.promptNew("Password for the new account: ")
        }
        let callOptions = global.callOptions(tenant: tenant.value, authorization: session.token ?? "")
        let response = try await global.withClient { client in
            try await client.teams.acceptInvitation(request, options: callOptions)
        }
        if global.json { return try printJSON(response) }
        printFields([
            ("team", response.team.id), ("name", displayText(response.team.name)), ("user", response.userID),
            ("role", teamRoleName(response.role)), ("account-created", yesNo(response.createdAccount)),
        ])
    }
}

/// An invitation as `key value` rows (never the token: moatd never returns it).
func invitationFields(_ invitation: Moat_V1_TeamInvitation) -> [(String, String)] {
    [
        ("id", invitation.id), ("team", invitation.teamID), ("email", displayText(invitation.email)),
        ("role", teamRoleName(invitation.role)),
        ("invited-by", invitation.invitedByUserID.isEmpty ? "(administrator)" : invitation.invitedByUserID),
        ("created", formatTime(invitation.createdAtUnix)), ("expires", formatTime(invitation.expiresAtUnix)),
    ]
}
