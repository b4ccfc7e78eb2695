import ArgumentParser
import Foundation
import MoatClient

/// `moatctl team`: teams, members and roles. Runs as the signed-in user of
/// `--session`/`$MOAT_SESSION`, or with no session as the administrator
/// process (full rights).
struct TeamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "team",
        abstract: "Create, show, list, rename and delete teams; manage members and roles.",
        discussion: """
            These run as the session's user (--session or MOAT_SESSION), or without one as \
            the administrator process. Team roles: owner, admin, member; tenant owners act \
            as team owners and tenant admins as team admins in every team. leave and check \
            need a session.
            """,
        subcommands: [
            TeamCreateCommand.self, TeamGetCommand.self, TeamListCommand.self, TeamRenameCommand.self,
            TeamDeleteCommand.self, TeamMembersCommand.self, TeamRoleCommand.self, TeamRemoveCommand.self,
            TeamLeaveCommand.self, TeamTransferCommand.self, TeamCheckCommand.self,
        ])
}

/// A team role as a command-line value.
enum TeamRoleArgument: String, ExpressibleByArgument, CaseIterable {
    case member, admin, owner

    var role: Moat_V1_TeamRole {
        switch self {
        case .member: .member
        case .admin: .admin
        case .owner: .owner
        }
    }
}

/// A team action as a command-line value (the TeamAction vocabulary).
enum TeamActionArgument: String, ExpressibleByArgument, CaseIterable {
    case view, editContent = "edit-content", manageContent = "manage-content", invite
    case manageMembers = "manage-members", rename, manageSettings = "manage-settings", delete
    case transferOwnership = "transfer-ownership"

    var action: Moat_V1_TeamAction {
        switch self {
        case .view: .view
        case .editContent: .editContent
        case .manageContent: .manageContent
        case .invite: .invite
        case .manageMembers: .manageMembers
        case .rename: .rename
        case .manageSettings: .manageSettings
        case .delete: .delete
        case .transferOwnership: .transferOwnership
        }
    }
}

func teamRoleName(_ role: Moat_V1_TeamRole) -> String {
    switch role {
    case .member: "member"
    case .admin: "admin"
    case .owner: "owner"
    case .unspecified: "-"
    case .UNRECOGNIZED(let value): "unknown(\(value))"
    }
}

/// `moatctl team create`.
struct TeamCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a team; you become its owner.",
        discussion: "Without a session (administrator process), --owner names the owner's user id.")

    @Option(name: .long, help: "The team's name (1 to 100 characters).")
    var name: String

    @Option(name: .long, help: ArgumentHelp("Administrator process only: the owner's user id.", valueName: "user-id"))
    var owner: String?

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        var request = Moat_V1_CreateTeamRequest()
        request.name = name
        request.ownerUserID = owner ?? ""
        let team = try await options.global.withClient { client in
            try await client.teams.create(request, options: options.callOptions)
        }
        try printTeam(team, json: options.global.json)
    }
}

/// `moatctl team get`.
struct TeamGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show a team and your role in it.")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let team = try await options.global.withClient { client in
            try await client.teams.get(.with { $0.teamID = teamID }, options: options.callOptions)
        }
        try printTeam(team, json: options.global.json)
    }
}

/// `moatctl team list`.
struct TeamListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List your teams (every team for tenant owners/admins), by name.")

    @OptionGroup var page: PageOptions
    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let (teams, next) = try await options.global.withClient { client in
            try await page.collect { pageSize, pageToken in
                let response = try await client.teams.list(
                    .with {
                        $0.pageSize = pageSize
                        $0.pageToken = pageToken
                    }, options: options.callOptions)
                return (response.teams, response.nextPageToken)
            }
        }
        if options.global.json {
            return try printJSON(
                Moat_V1_ListTeamsResponse.with {
                    $0.teams = teams
                    $0.nextPageToken = next
                })
        }
        printTable(
            ["ID", "NAME", "YOUR ROLE", "MEMBER", "CREATED"],
            teams.map {
                [$0.id, displayText($0.name), teamRoleName($0.callerRole), yesNo($0.callerIsMember), formatTime($0.createdAtUnix)]
            })
        page.reportMore(next)
    }
}

/// `moatctl team rename`.
struct TeamRenameCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rename", abstract: "Rename a team (team admin).")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @Option(name: .long, help: "The new name.")
    var name: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let team = try await options.global.withClient { client in
            try await client.teams.rename(
                .with {
                    $0.teamID = teamID
                    $0.name = name
                }, options: options.callOptions)
        }
        try printTeam(team, json: options.global.json)
    }
}

/// `moatctl team delete`.
struct TeamDeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a team with its memberships and invitations (team owner).")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let response = try await options.global.withClient { client in
            try await client.teams.delete(.with { $0.teamID = teamID }, options: options.callOptions)
        }
        if options.global.json { return try printJSON(response) }
        print("deleted \(teamID)")
    }
}

/// `moatctl team members`.
struct TeamMembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "members", abstract: "List a team's members by email.")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let response = try await options.global.withClient { client in
            try await client.teams.listMembers(.with { $0.teamID = teamID }, options: options.callOptions)
        }
        if options.global.json { return try printJSON(response) }
        printTable(
            ["USER", "EMAIL", "ROLE", "JOINED"],
            response.members.map { [$0.userID, displayText($0.email), teamRoleName($0.role), formatTime($0.joinedAtUnix)] })
    }
}

/// `moatctl team role`.
struct TeamRoleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "role", abstract: "Change a member's team role (team admin; owners: team owner).")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @Argument(help: ArgumentHelp("The member's user id (us_...).", valueName: "user-id"))
    var userID: String

    @Argument(help: "The new role.")
    var role: TeamRoleArgument

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let member = try await options.global.withClient { client in
            try await client.teams.changeRole(
                .with {
                    $0.teamID = teamID
                    $0.userID = userID
                    $0.role = role.role
                }, options: options.callOptions)
        }
        if options.global.json { return try printJSON(member) }
        printFields([
            ("user", member.userID), ("email", displayText(member.email)), ("role", teamRoleName(member.role)),
            ("joined", formatTime(member.joinedAtUnix)),
        ])
    }
}

/// `moatctl team remove`.
struct TeamRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Remove a member from a team (team admin; owners: team owner).")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @Argument(help: ArgumentHelp("The member's user id (us_...).", valueName: "user-id"))
    var userID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let response = try await options.global.withClient { client in
            try await client.teams.removeMember(
                .with {
                    $0.teamID = teamID
                    $0.userID = userID
                }, options: options.callOptions)
        }
        if options.global.json { return try printJSON(response) }
        print("removed \(userID) from \(teamID)")
    }
}

/// `moatctl team leave`.
struct TeamLeaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leave", abstract: "Leave a team (the last owner cannot: transfer ownership first).")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @OptionGroup var options: SignedInOptions

    func run() async throws {
        let callOptions = try options.callOptions()
        let response = try await options.global.withClient { client in
            try await client.teams.leave(.with { $0.teamID = teamID }, options: callOptions)
        }
        if options.global.json { return try printJSON(response) }
        print("left \(teamID)")
    }
}

/// `moatctl team transfer`.
struct TeamTransferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer",
        abstract: "Make a member the team's owner (team owner); you become an admin.")

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @Argument(help: ArgumentHelp("The new owner's user id (us_...), a member of the team.", valueName: "user-id"))
    var userID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let response = try await options.global.withClient { client in
            try await client.teams.transferOwnership(
                .with {
                    $0.teamID = teamID
                    $0.userID = userID
                }, options: options.callOptions)
        }
        if options.global.json { return try printJSON(response) }
        print("\(userID) now owns \(teamID)")
    }
}

/// `moatctl team check`.
struct TeamCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Ask whether the session's user may take an action in a team (exit 1 if not).",
        discussion: """
            Actions and the least team role each needs: view, edit-content (member); \
            manage-content, invite, manage-members, rename (admin); manage-settings, delete, \
            transfer-ownership (owner).
            """)

    @Argument(help: ArgumentHelp("The team's id (tm_...).", valueName: "team-id"))
    var teamID: String

    @Argument(help: "The action.")
    var action: TeamActionArgument

    @OptionGroup var options: SignedInOptions

    func run() async throws {
        let callOptions = try options.callOptions()
        let response = try await options.global.withClient { client in
            try await client.teams.checkPermission(
                .with {
                    $0.teamID = teamID
                    $0.action = action.action
                }, options: callOptions)
        }
        if options.global.json {
            try printJSON(response)
        } else {
            printFields([("allowed", yesNo(response.allowed)), ("role", teamRoleName(response.role))])
        }
        if !response.allowed { throw ExitCode(1) }
    }
}

/// Prints a team as JSON or as `key value` rows.
func printTeam(_ team: Moat_V1_Team, json: Bool) throws {
    if json { return try printJSON(team) }
    printFields([
        ("id", team.id), ("name", displayText(team.name)), ("your-role", teamRoleName(team.callerRole)),
        ("member", yesNo(team.callerIsMember)), ("created", formatTime(team.createdAtUnix)), ("tenant", team.tenantID),
    ])
}
