import ArgumentParser
import Foundation
import MoatClient

/// `moatctl user`: a tenant's user accounts. Runs as the administrator
/// process, or with `--session`/`$MOAT_SESSION` as that signed-in user (a
/// tenant owner or admin).
struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Create, show, list, disable and enable a tenant's users.",
        discussion: """
            These run as the administrator process, or, with --session or MOAT_SESSION, \
            as that session's user (a tenant owner or admin).
            """,
        subcommands: [
            UserCreateCommand.self, UserGetCommand.self, UserListCommand.self, UserDisableCommand.self,
            UserEnableCommand.self, UserSecurityLogCommand.self,
        ])
}

/// Who a `user` subcommand acts as, and where.
struct UserCallOptions: ParsableArguments {
    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption
    @OptionGroup var global: GlobalOptions

    /// The envelope: the tenant, and the session if one was given (else the
    /// call is the administrator process's own).
    var callOptions: CallOptions {
        global.callOptions(tenant: tenant.value, authorization: session.token ?? "")
    }
}

/// A tenant role as a command-line value.
enum RoleArgument: String, ExpressibleByArgument, CaseIterable {
    case member, admin, owner

    var role: Moat_V1_TenantRole {
        switch self {
        case .member: .member
        case .admin: .admin
        case .owner: .owner
        }
    }
}

/// `moatctl user create`: a user with a password, in a tenant.
struct UserCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a user.",
        discussion: """
            The password is asked for twice without echo, or read from standard input \
            with --password-stdin (one trailing newline is dropped). Only an owner may \
            create another owner.
            """)

    @Option(name: .long, help: "The user's email.")
    var email: String

    @Option(name: .long, help: "The user's role in the tenant.")
    var role: RoleArgument = .member

    @Flag(name: .long, help: "Read the password from standard input instead of prompting.")
    var passwordStdin = false

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        var request = Moat_V1_CreateUserRequest()
        request.email = email
        request.role = role.role
        request.password =
            passwordStdin
            ? try Secrets.readStdin("password", flag: "--password-stdin")
            : try Secrets.promptNew("Password for \(email): ")
        let user = try await options.global.withClient { client in
            try await client.users.create(request, options: options.callOptions)
        }
        try printUser(user, json: options.global.json)
    }
}

/// `moatctl user get`: one user.
struct UserGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Show a user.")

    @Argument(help: ArgumentHelp("The user's id (us_...).", valueName: "user-id"))
    var userID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        var request = Moat_V1_GetUserRequest()
        request.userID = userID
        let user = try await options.global.withClient { client in
            try await client.users.get(request, options: options.callOptions)
        }
        try printUser(user, json: options.global.json)
    }
}

/// `moatctl user list`: a tenant's users by email.
struct UserListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List a tenant's users, ordered by email.")

    @OptionGroup var page: PageOptions
    @OptionGroup var options: UserCallOptions

    func run() async throws {
        let (users, next) = try await options.global.withClient { client in
            try await page.collect { pageSize, pageToken in
                var request = Moat_V1_ListUsersRequest()
                request.pageSize = pageSize
                request.pageToken = pageToken
                let response = try await client.users.list(request, options: options.callOptions)
                return (response.users, response.nextPageToken)
            }
        }
        if options.global.json {
            var response = Moat_V1_ListUsersResponse()
            response.users = users
            response.nextPageToken = next
            return try printJSON(response)
        }
        printTable(
            ["ID", "EMAIL", "ROLE", "STATUS", "2FA", "CREATED"],
            users.map {
                [
                    $0.id, $0.email, roleName($0.role), statusName($0.status), onOff($0.twoFactorEnabled),
                    formatTime($0.createdAtUnix),
                ]
            })
        page.reportMore(next)
    }
}

/// `moatctl user disable`: refuse a user's sign-ins and end their sessions.
struct UserDisableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable", abstract: "Disable a user: refuse their sign-ins and revoke every session.")

    @Argument(help: ArgumentHelp("The user's id (us_...).", valueName: "user-id"))
    var userID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        var request = Moat_V1_SetUserEnabledRequest()
        request.userID = userID
        let user = try await options.global.withClient { client in
            try await client.users.disable(request, options: options.callOptions)
        }
        try printUser(user, json: options.global.json)
    }
}

/// `moatctl user enable`: let a disabled user sign in again.
struct UserEnableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable", abstract: "Enable a disabled user: let them sign in again.")

    @Argument(help: ArgumentHelp("The user's id (us_...).", valueName: "user-id"))
    var userID: String

    @OptionGroup var options: UserCallOptions

    func run() async throws {
        var request = Moat_V1_SetUserEnabledRequest()
        request.userID = userID
        let user = try await options.global.withClient { client in
            try await client.users.enable(request, options: options.callOptions)
        }
        try printUser(user, json: options.global.json)
    }
}

/// Prints a user as JSON or as `key value` rows.
func printUser(_ user: Moat_V1_User, json: Bool) throws {
    if json { return try printJSON(user) }
    printFields(userFields(user))
}

/// A user as `key value` rows.
func userFields(_ user: Moat_V1_User) -> [(String, String)] {
    [
        ("id", user.id),
        ("email", user.email),
        ("role", roleName(user.role)),
        ("status", statusName(user.status)),
        ("2fa", onOff(user.twoFactorEnabled)),
        ("created", formatTime(user.createdAtUnix)),
        ("password-changed", formatTime(user.passwordChangedAtUnix)),
        ("tenant", user.tenantID),
    ] + (user.purgeAfterUnix != 0 ? [("purged", formatTime(user.purgeAfterUnix))] : [])
}
