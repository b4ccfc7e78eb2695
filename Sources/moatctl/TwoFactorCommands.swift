import ArgumentParser
import Foundation
import MoatClient
import MoatCrypto

/// `moatctl 2fa …`: the signed-in user's authenticator.
struct TwoFactorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "2fa",
        abstract: "Two-factor authentication of the user in --session or MOAT_SESSION.",
        discussion: """
            Enrol an authenticator app: '2fa enroll' shows a QR code (scan it) and the secret \
            (or type it), then '2fa confirm' with the 6-digit code the app shows turns 2FA on \
            and prints ten recovery codes, once. Codes and passwords are asked for without \
            echo, or read from standard input with --code-stdin / --password-stdin.
            """,
        subcommands: [
            TwoFactorEnrollCommand.self, TwoFactorConfirmCommand.self, TwoFactorDisableCommand.self,
            TwoFactorStatusCommand.self, TwoFactorRecoveryCodesCommand.self, TwoFactorVerifyCommand.self,
        ])
}

/// `--code-stdin`, and reading a code from it or from a no-echo prompt.
struct CodeOption: ParsableArguments {
    @Flag(name: .long, help: "Read the code from standard input instead of prompting.")
    var codeStdin = false

    func read(_ prompt: String = "Authenticator code: ") throws -> String {
        codeStdin
            ? try Secrets.readStdin("code", flag: "--code-stdin")
            : try Secrets.prompt(prompt, stdinFlag: "--code-stdin")
    }
}

/// The options of a call made as the session user with a code: tenant,
/// session, the code's source and the global options.
struct SessionCodeOptions: ParsableArguments {
    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption
    @OptionGroup var code: CodeOption
    @OptionGroup var global: GlobalOptions

    func validate() throws { _ = try session.required() }

    /// Reads the code, then makes the call as the session user.
    func call<R>(_ body: (MoatClient, String, CallOptions) async throws -> R) async throws -> R {
        let token = try session.required()
        let value = try code.read()
        let options = global.callOptions(tenant: tenant.value, authorization: token)
        return try await global.withClient { client in try await body(client, value, options) }
    }
}

struct TwoFactorEnrollCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll",
        abstract: "Start enrolling an authenticator: print its QR code and secret.",
        discussion: """
            Needs the password again. The QR code is drawn with block characters; if your \
            terminal is dark-on-light pass --light. The enrolment must be confirmed within \
            15 minutes with '2fa confirm'. While 2FA is on, this replaces the authenticator \
            only once the new one is confirmed.
            """)

    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption

    @Flag(name: .long, help: "Read the password from standard input instead of prompting.")
    var passwordStdin = false

    @Flag(name: .long, help: "Draw the QR code for a dark-on-light terminal.")
    var light = false

    @Option(name: .long, help: ArgumentHelp("Also write the QR code as SVG to this file.", valueName: "file"))
    var svg: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws { _ = try session.required() }

    func run() async throws {
        let token = try session.required()
        let password =
            passwordStdin
            ? try Secrets.readStdin("password", flag: "--password-stdin") : try Secrets.prompt("Password: ")
        let response = try await global.withClient { client in
            try await client.twoFactor.beginEnrollment(
                .with { $0.password = password }, options: global.callOptions(tenant: tenant.value, authorization: token))
        }
        if let svg {
            do { try response.qrSvg.write(toFile: svg, atomically: true, encoding: .utf8) } catch {
                throw CommandFailure.failed("cannot write \(svg): \(error.localizedDescription)")
            }
        }
        if global.json { return try printJSON(response) }
        if let code = QRCode(size: Int(response.qrSize), packedRows: Array(response.qrModules)) {
            print(code.terminal(quietZone: 2, darkBackground: !light), terminator: "")
        }
        printFields([
            ("secret", response.secret),
            ("uri", response.otpauthUri),
            ("type", "TOTP, \(response.algorithm), \(response.digits) digits, every \(response.periodSeconds) s"),
            ("expires", formatTime(response.expiresAtUnix)),
        ])
        if let svg { printError("QR code written to \(svg)") }
        printError("scan the code (or type the secret) in your app, then: moatctl 2fa confirm")
    }
}

struct TwoFactorConfirmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm",
        abstract: "Confirm the enrolment with a code from the app; prints the recovery codes.")

    @OptionGroup var options: SessionCodeOptions

    func run() async throws {
        let response = try await options.call { client, code, callOptions in
            try await client.twoFactor.confirmEnrollment(.with { $0.code = code }, options: callOptions)
        }
        if options.global.json { return try printJSON(response) }
        printError("two-factor authentication is on since \(formatTime(response.enabledAtUnix))")
        printRecoveryCodes(response.recoveryCodes)
    }
}

/// Prints recovery codes to standard output and how to keep them to
/// standard error.
func printRecoveryCodes(_ codes: [String]) {
    for code in codes { print(code) }
    printError("recovery codes: each works once; store them somewhere safe. They are not shown again.")
}

struct TwoFactorDisableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable", abstract: "Turn two-factor authentication off (a current code, or the password).")

    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption

    @Flag(name: .long, help: "Prove it with the password instead of a code.")
    var withPassword = false

    @Flag(name: .long, help: "Read the code (or with --with-password the password) from standard input.")
    var stdin = false

    @OptionGroup var global: GlobalOptions

    func validate() throws { _ = try session.required() }

    func run() async throws {
        let token = try session.required()
        var request = Moat_V1_DisableTwoFactorRequest()
        if withPassword {
            request.password = stdin ? try Secrets.readStdin("password", flag: "--stdin") : try Secrets.prompt("Password: ", stdinFlag: "--stdin")
        } else {
            request.code = stdin ? try Secrets.readStdin("code", flag: "--stdin") : try Secrets.prompt("Authenticator code: ", stdinFlag: "--stdin")
        }
        let response = try await global.withClient { client in
            try await client.twoFactor.disable(request, options: global.callOptions(tenant: tenant.value, authorization: token))
        }
        if global.json { return try printJSON(response) }
        print("two-factor authentication is off")
    }
}

struct TwoFactorStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show whether two-factor authentication is on.")

    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption
    @OptionGroup var global: GlobalOptions

    func validate() throws { _ = try session.required() }

    func run() async throws {
        let token = try session.required()
        let response = try await global.withClient { client in
            try await client.twoFactor.status(options: global.callOptions(tenant: tenant.value, authorization: token))
        }
        if global.json { return try printJSON(response) }
        var rows: [(String, String)] = [("2fa", response.enabled ? "on" : "off")]
        if response.enabled {
            rows.append(("since", formatTime(response.enabledAtUnix)))
            rows.append(("recovery codes left", "\(response.recoveryCodesRemaining)"))
        }
        if response.pendingEnrollmentExpiresAtUnix != 0 {
            rows.append(("pending enrolment until", formatTime(response.pendingEnrollmentExpiresAtUnix)))
        }
        if response.lockedUntilUnix != 0 { rows.append(("locked until", formatTime(response.lockedUntilUnix))) }
        printFields(rows)
    }
}

struct TwoFactorRecoveryCodesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recovery-codes",
        abstract: "Replace the recovery codes with ten new ones (needs a current code); the old ones stop working.")

    @OptionGroup var options: SessionCodeOptions

    func run() async throws {
        let response = try await options.call { client, code, callOptions in
            try await client.twoFactor.regenerateRecoveryCodes(.with { $0.code = code }, options: callOptions)
        }
        if options.global.json { return try printJSON(response) }
        printRecoveryCodes(response.recoveryCodes)
    }
}

struct TwoFactorVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check a current code (each code works once).")

    @OptionGroup var options: SessionCodeOptions

    func run() async throws {
        let response = try await options.call { client, code, callOptions in
            try await client.twoFactor.verify(.with { $0.code = code }, options: callOptions)
        }
        if options.global.json { return try printJSON(response) }
        print("code accepted")
    }
}
