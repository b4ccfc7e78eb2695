import ArgumentParser
import Foundation
import MoatClient

/// Asks the user to type DELETE (or takes `--confirm DELETE`).
func deletionConfirmation(_ given: String?, what: String) throws -> String {
    if let given { return given }
    guard isatty(STDIN_FILENO) == 1 else {
        throw CommandFailure.usage("no terminal to confirm on: pass --confirm DELETE")
    }
    FileHandle.standardError.write(Data("This schedules \(what) for deletion. Type DELETE to confirm: ".utf8))
    return readLine() ?? ""
}

/// The password and, with `withCode`, a 2FA code: from standard input (one
/// a line, with `--stdin`) or no-echo prompts.
func readPasswordAndCode(prompt: String, withCode: Bool, stdin: Bool) throws -> (String, String) {
    if stdin {
        let values = try Secrets.readStdin(withCode ? ["password", "code"] : ["password"], flag: "--stdin")
        return (values[0], withCode ? values[1] : "")
    }
    let password = try Secrets.prompt(prompt, stdinFlag: "--stdin")
    return (password, withCode ? try Secrets.prompt("Authenticator code: ", stdinFlag: "--stdin") : "")
}

/// `moatctl tenant delete`: schedule a tenant's deletion.
struct TenantDeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Schedule a tenant and every account in it for deletion (grace period, then purge).",
        discussion: """
            Every session in the tenant is revoked at once and nobody signs in. After the grace \
            period (30 days by default) the purge job deletes it; until then 'tenant restore' \
            cancels it.
            """)

    @Argument(help: ArgumentHelp("The tenant, by id (tn_...) or slug.", valueName: "tenant"))
    var tenant: String

    @Option(name: .long, help: ArgumentHelp("Confirm without a prompt: exactly DELETE.", valueName: "text"))
    var confirm: String?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let confirmation = try deletionConfirmation(confirm, what: "tenant \(tenant)")
        let response = try await global.withClient { client in
            try await client.tenants.requestDeletion(
                .with {
                    $0.tenant = tenant
                    $0.confirmation = confirmation
                }, options: global.callOptions())
        }
        if global.json { return try printJSON(response) }
        printFields(tenantFields(response))
    }
}

/// `moatctl tenant restore`: cancel a tenant's pending deletion.
struct TenantRestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Cancel a tenant's pending deletion.")

    @Argument(help: ArgumentHelp("The tenant, by id (tn_...) or slug.", valueName: "tenant"))
    var tenant: String

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let response = try await global.withClient { client in
            try await client.tenants.cancelDeletion(.with { $0.tenant = tenant }, options: global.callOptions())
        }
        if global.json { return try printJSON(response) }
        printFields(tenantFields(response))
    }
}

/// `moatctl account …`: the signed-in user's own account.
struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account", abstract: "Delete or restore your own account.",
        subcommands: [AccountDeleteCommand.self, AccountRestoreCommand.self])
}

struct AccountDeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Schedule the account in --session or MOAT_SESSION for deletion.",
        discussion: """
            Asks for DELETE, the password and, when two-factor is on, a current code. Every \
            session is signed out; the account is purged after the grace period (30 days by \
            default) unless restored with 'account restore'. With --stdin, standard input holds \
            the password (and the code on a second line with --with-code).
            """)

    @OptionGroup var tenant: TenantOption
    @OptionGroup var session: SessionOption

    @Option(name: .long, help: ArgumentHelp("Confirm without a prompt: exactly DELETE.", valueName: "text"))
    var confirm: String?

    @Flag(name: .long, help: "Two-factor is on: also ask for (or read) a current code.")
    var withCode = false

    @Flag(name: .long, help: "Read the password (and code) from standard input.")
    var stdin = false

    @OptionGroup var global: GlobalOptions

    func validate() throws { _ = try session.required() }

    func run() async throws {
        let token = try session.required()
        let confirmation = try deletionConfirmation(confirm, what: "your account")
        var request = Moat_V1_RequestAccountDeletionRequest()
        request.confirmation = confirmation
        (request.password, request.code) = try readPasswordAndCode(prompt: "Password: ", withCode: withCode, stdin: stdin)
        let response = try await global.withClient { client in
            try await client.users.requestDeletion(
                request, options: global.callOptions(tenant: tenant.value, authorization: token))
        }
        if global.json { return try printJSON(response) }
        printFields(userFields(response))
        printError("every session is signed out; restore before \(formatTime(response.purgeAfterUnix)) with 'moatctl account restore'")
    }
}

struct AccountRestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore an account scheduled for deletion (email, password, and a code when 2FA is on).")

    @OptionGroup var tenant: TenantOption

    @Option(name: .long, help: "The account's email.")
    var email: String

    @Flag(name: .long, help: "Two-factor is on: also ask for (or read) a current code.")
    var withCode = false

    @Flag(name: .long, help: "Read the password (and code) from standard input.")
    var stdin = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var request = Moat_V1_RestoreAccountRequest()
        request.email = email
        (request.password, request.code) = try readPasswordAndCode(
            prompt: "Password for \(email): ", withCode: withCode, stdin: stdin)
        let response = try await global.withClient { client in
            try await client.users.restoreAccount(request, options: global.callOptions(tenant: tenant.value))
        }
        if global.json { return try printJSON(response) }
        printFields(userFields(response))
        printError("the account is active again; sign in as usual")
    }
}
