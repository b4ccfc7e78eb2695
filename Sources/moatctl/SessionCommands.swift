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

            When the account has two-factor authentication on, the code from the \
            authenticator app is asked for next (or, with --recovery-code, a recovery code). \
            With --password-stdin and --code-stdin, standard input holds two lines: the \
            password, then the code.
            """)

    @OptionGroup var tenant: TenantOption

    @Option(name: .long, help: "The user's email.")
    var email: String

    @Flag(name: .long, help: "Read the password from standard input instead of prompting.")
    var passwordStdin = false

    @Flag(name: .long, help: "Read the two-factor code from standard input (after the password line).")
    var codeStdin = false

    @Flag(name: .long, help: "Complete two-factor sign-in with a recovery code instead of an app code.")
    var recoveryCode = false

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
        // With both flags, both secrets come from standard input, one a line.
        var pendingCode: String?
        switch (passwordStdin, codeStdin) {
        case (true, true):
            let lines = try Secrets.readStdin(["password", "code"], flag: "--password-stdin --code-stdin")
            request.password = lines[0]
            pendingCode = lines[1]
        case (true, false):
            request.password = try Secrets.readStdin("password", flag: "--password-stdin")
        case (false, _):
            request.password = try Secrets.prompt("Password for \(email): ")
        }
        if userAgent != nil || ip != nil || location != nil || deviceName != nil {
            request.client.userAgent = userAgent ?? ""
            request.client.ip = ip ?? ""
            request.client.location = location ?? ""
            request.client.deviceName = deviceName ?? ""
        }
        let options = global.callOptions(tenant: tenant.value)
        var response = try await global.withClient { client in try await client.users.signIn(request, options: options) }
        if response.secondFactorRequired {
            var completion = Moat_V1_CompleteSignInRequest()
            completion.challenge = response.challenge
            let code: String
            if let pendingCode {
                code = pendingCode
            } else if codeStdin {
                code = try Secrets.readStdin("code", flag: "--code-stdin")
            } else {
                code = try Secrets.prompt(
                    recoveryCode ? "Recovery code: " : "Authenticator code: ", stdinFlag: "--code-stdin")
            }
            if recoveryCode { completion.recoveryCode = code } else { completion.code = code }
            response = try await global.withClient { client in
                try await client.users.completeSignIn(completion, options: options)
            }
        }
        if global.json { return try printJSON(response) }
        print(response.sessionToken)
        let user = response.user
        let session = response.session
        printError(
            "signed in as \(displayText(user.email)) (\(user.id)); session \(session.id), "
                + "expires \(formatTime(session.expiresAtUnix))")
        if session.twoFactorSetupRequired {
            printError("two-factor: the tenant requires it; set it up with 'moatctl 2fa enroll'")
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
