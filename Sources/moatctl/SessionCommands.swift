import ArgumentParser
import Foundation
import MoatClient

/// `moatctl signin`: check a user's password and start a session; prints
/// the session token.
struct SignInCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signin",
        abstract: "Sign a user in and print the session token.",
        discussion: """
            The password is asked for without echo, or read from standard input with \
            --password-stdin. Standard output gets only the token, so this works:

              export MOAT_SESSION=$(moatctl signin --tenant acme --email alice@example.com)

            Then user commands, signout and passwd act as that user.
            """)

    @OptionGroup var tenant: TenantOption

    @Option(name: .long, help: "The user's email.")
    var email: String

    @Flag(name: .long, help: "Read the password from standard input instead of prompting.")
    var passwordStdin = false

    @Option(name: .long, help: ArgumentHelp("The user agent to record on the session.", valueName: "ua"))
    var userAgent: String?

    @Option(name: .long, help: ArgumentHelp("The client IP address to record on the session.", valueName: "ip"))
    var ip: String?

    @Option(name: .long, help: ArgumentHelp("Where the client is, e.g. \"Berlin, DE\".", valueName: "place"))
    var location: String?

    @Option(name: .long, help: ArgumentHelp("A name for the device.", valueName: "name"))
    var deviceName: String?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var request = Moat_V1_SignInRequest()
        request.email = email
        request.password =
            passwordStdin
            ? try Secrets.readStdin("password", flag: "--password-stdin")
            : try Secrets.prompt("Password for \(email): ")
        if userAgent != nil || ip != nil || location != nil || deviceName != nil {
            request.client.userAgent = userAgent ?? ""
            request.client.ip = ip ?? ""
            request.client.location = location ?? ""
            request.client.deviceName = deviceName ?? ""
        }
        let response = try await global.withClient { client in
            try await client.users.signIn(request, options: global.callOptions(tenant: tenant.value))
        }
        if global.json { return try printJSON(response) }
        print(response.sessionToken)
        let user = response.user
        let session = response.session
        printError(
            "signed in as \(displayText(user.email)) (\(user.id)); session \(session.id), "
                + "expires \(formatTime(session.expiresAtUnix))")
        if user.twoFactorEnabled && !session.secondFactorSatisfied {
            printError("two-factor: the session still needs the second factor")
        }
        if isatty(STDOUT_FILENO) == 1 {
            printError("to act as this user next: export MOAT_SESSION=<the token above>")
        } else {
            printError("the token went to standard output; set MOAT_SESSION to it to act as this user next")
        }
    }
}

/// `moatctl signout`: revoke the session in `--session`/`$MOAT_SESSION`.
struct SignOutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signout", abstract: "Sign out: revoke the session in --session or MOAT_SESSION.")

    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try session.required()
    }

    func run() async throws {
        let token = try session.required()
        let response = try await global.withClient { client in
            try await client.users.signOut(
                Moat_V1_SignOutRequest(), options: global.callOptions(tenant: tenant.value, authorization: token))
        }
        if global.json { return try printJSON(response) }
        print("signed out")
        if (session.session ?? "").isEmpty {
            printError("the token in MOAT_SESSION no longer works: unset MOAT_SESSION")
        }
    }
}
