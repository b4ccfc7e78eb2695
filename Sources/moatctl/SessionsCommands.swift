import ArgumentParser
import Foundation
import MoatClient

/// `moatctl sessions`: the "Active Sessions" page on the command line, and
/// token validation.
struct SessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "List and revoke a user's sessions; validate a session token.",
        discussion: """
            list, revoke and revoke-others act as the signed-in user of --session or \
            MOAT_SESSION. revoke-all runs as the administrator process, or with a session \
            of a tenant owner or admin. validate checks any token (default MOAT_SESSION).
            """,
        subcommands: [
            SessionsListCommand.self, SessionsRevokeCommand.self, SessionsRevokeOthersCommand.self,
            SessionsRevokeAllCommand.self, SessionsValidateCommand.self,
        ])
}

/// The tenant, the signed-in user's session (required) and the global
/// options of the commands that act as that user.
struct SignedInOptions: ParsableArguments {
    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try session.required()
    }

    /// The envelope: the tenant and the session token.
    func callOptions() throws -> CallOptions {
        global.callOptions(tenant: tenant.value, authorization: try session.required())
    }
}

/// `moatctl sessions list`: the signed-in user's sessions.
struct SessionsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the signed-in user's sessions, most recently active first.",
        discussion: """
            The session making the call is marked '*' and '(this device)'. Use an ID with \
            'moatctl sessions revoke'.
            """)

    @Flag(name: .long, help: "Also show the device name, second factor, expiry and user agent.")
    var wide = false

    @OptionGroup var options: SignedInOptions

    func run() async throws {
        let callOptions = try options.callOptions()
        let response = try await options.global.withClient { client in
            try await client.sessions.list(options: callOptions)
        }
        if options.global.json { return try printJSON(response) }
        let now = unixNow()
        var header = ["", "ID", "DEVICE", "BROWSER", "LOCATION", "IP", "LAST ACTIVE", "SIGNED IN"]
        if wide { header += ["NAME", "2ND FACTOR", "EXPIRES", "USER AGENT"] }
        printTable(
            header,
            response.sessions.map { session in
                var row = [
                    session.current ? "*" : " ",
                    session.id,
                    deviceText(session) + (session.current ? " (this device)" : ""),
                    session.browser,
                    session.location,
                    session.ip,
                    formatAgo(session.lastActiveAtUnix, now: now),
                    formatTime(session.createdAtUnix),
                ]
                if wide {
                    row += [
                        session.deviceName, yesNo(session.secondFactorSatisfied), formatTime(session.expiresAtUnix),
                        session.userAgent,
                    ]
                }
                return row
            })
    }

    /// `desktop · Windows 10`, `mobile · iOS 17.4`, or what of it is known.
    private func deviceText(_ session: Moat_V1_Session) -> String {
        [session.deviceType, session.os].filter { !$0.isEmpty }.joined(separator: " · ")
    }
}

/// `moatctl sessions revoke`: end one of the signed-in user's sessions.
struct SessionsRevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke one of the signed-in user's sessions (that device is signed out).")

    @Argument(help: ArgumentHelp("The session's id (se_..., from 'sessions list').", valueName: "session-id"))
    var sessionID: String

    @OptionGroup var options: SignedInOptions

    func validate() throws {
        if sessionID.isEmpty { throw ValidationError("The session id is empty.") }
    }

    func run() async throws {
        var request = Moat_V1_RevokeSessionRequest()
        request.sessionID = sessionID
        let callOptions = try options.callOptions()
        let response = try await options.global.withClient { client in
            try await client.sessions.revoke(request, options: callOptions)
        }
        if options.global.json { return try printJSON(response) }
        print("revoked \(displayText(sessionID))")
    }
}

/// `moatctl sessions revoke-others`: sign out everywhere else.
struct SessionsRevokeOthersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke-others",
        abstract: "Revoke every session of the signed-in user except the calling one.")

    @OptionGroup var options: SignedInOptions

    func run() async throws {
        let callOptions = try options.callOptions()
        let response = try await options.global.withClient { client in
            try await client.sessions.revokeOthers(options: callOptions)
        }
        if options.global.json { return try printJSON(response) }
        print("revoked \(sessionCount(response.revoked, other: true))")
    }
}

/// `moatctl sessions revoke-all`: sign a user out everywhere.
struct SessionsRevokeAllCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke-all",
        abstract: "Revoke every session of a user (administrator, or an owner/admin session).",
        discussion: """
            Runs as the administrator process, or, with --session or MOAT_SESSION, as that \
            session's user (a tenant owner or admin; an owner's sessions need an owner).
            """)

    @Argument(help: ArgumentHelp("The user's id (us_...).", valueName: "user-id"))
    var userID: String

    @OptionGroup var options: UserCallOptions

    func validate() throws {
        if userID.isEmpty { throw ValidationError("The user id is empty.") }
    }

    func run() async throws {
        var request = Moat_V1_RevokeAllForUserRequest()
        request.userID = userID
        let response = try await options.global.withClient { client in
            try await client.sessions.revokeAllForUser(request, options: options.callOptions)
        }
        if options.global.json { return try printJSON(response) }
        print("revoked \(sessionCount(response.revoked, other: false)) of \(displayText(userID))")
    }
}

/// `moatctl sessions validate`: check a session token as a service would.
struct SessionsValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a session token and show whose it is (exit 1 if it is not valid).",
        discussion: """
            Checks the token of --token, of standard input with --token-stdin, or else of \
            MOAT_SESSION, the way other services do on every request. An unknown, revoked, \
            expired or other-tenant token is UNAUTHENTICATED (SESSION_INVALID). A valid \
            check counts as activity: it pushes back the idle expiry.
            """)

    @OptionGroup var tenant: TenantOption

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The token to check (default $MOAT_SESSION, which is safer: arguments show in `ps`).",
            valueName: "token"))
    var token: String?

    @Flag(name: .long, help: "Read the token from standard input.")
    var tokenStdin = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        switch (token, tokenStdin) {
        case (.some, true): throw ValidationError("Give '--token <token>' or '--token-stdin', not both.")
        case (.some(let token), false) where token.isEmpty: throw ValidationError("The token is empty.")
        case (nil, false) where environmentToken == nil:
            throw ValidationError("No token: pass '--token <token>' or '--token-stdin', or set MOAT_SESSION.")
        default: break
        }
    }

    /// `$MOAT_SESSION`, unless unset or empty.
    private var environmentToken: String? {
        let value = ProcessInfo.processInfo.environment["MOAT_SESSION"] ?? ""
        return value.isEmpty ? nil : value
    }

    func run() async throws {
        var request = Moat_V1_ValidateRequest()
        if tokenStdin {
            request.token = try Secrets.readStdin("token", flag: "--token-stdin")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            request.token = token ?? environmentToken ?? ""
        }
        let response = try await global.withClient { client in
            try await client.sessions.validate(request, options: global.callOptions(tenant: tenant.value))
        }
        if global.json { return try printJSON(response) }
        let now = unixNow()
        printFields([
            ("valid", "yes"),
            ("user", response.userID),
            ("email", response.email),
            ("role", roleName(response.role)),
            ("tenant", response.tenantID),
            ("session", response.sessionID),
            ("second-factor-satisfied", yesNo(response.secondFactorSatisfied)),
            ("2fa-setup-required", yesNo(response.twoFactorSetupRequired)),
            ("idle-expires", formatUntil(response.expiresAtUnix, now: now)),
            ("absolute-expires", formatUntil(response.absoluteExpiresAtUnix, now: now)),
        ])
    }
}

/// `1 session`, `3 other sessions`, `0 sessions`.
private func sessionCount(_ count: UInt32, other: Bool) -> String {
    "\(count)\(other ? " other" : "") session\(count == 1 ? "" : "s")"
}
