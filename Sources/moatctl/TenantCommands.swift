import ArgumentParser
import Foundation
import MoatClient

/// `moatctl tenant`: create, show and list tenants, and set their policy.
/// Every subcommand needs an administrator caller.
struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant",
        abstract: "Create, show, list and delete tenants, and set their policy (administrator).",
        subcommands: [
            TenantCreateCommand.self, TenantGetCommand.self, TenantListCommand.self, TenantPolicyCommand.self,
            TenantDeleteCommand.self, TenantRestoreCommand.self,
        ])
}

/// `moatctl tenant create`: a tenant and its first owner in one go.
struct TenantCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a tenant and its first owner.",
        discussion: """
            The owner's password is asked for twice without echo, or read from standard \
            input with --owner-password-stdin (one trailing newline is dropped). It is \
            never taken as an argument.
            """)

    @Option(name: .long, help: "Unique slug: lowercase letters, digits and '-', 3 to 63 characters.")
    var slug: String

    @Option(name: .long, help: "Display name, shown as the issuer in authenticator apps.")
    var name: String

    @Option(name: .long, help: "The first owner's email.")
    var ownerEmail: String

    @Flag(name: .long, help: "Read the owner's password from standard input instead of prompting.")
    var ownerPasswordStdin = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var request = Moat_V1_CreateTenantRequest()
        request.slug = slug
        request.name = name
        request.ownerEmail = ownerEmail
        request.ownerPassword =
            ownerPasswordStdin
            ? try Secrets.readStdin("password", flag: "--owner-password-stdin")
            : try Secrets.promptNew(
                "Password for the owner \(ownerEmail): ", stdinFlag: "--owner-password-stdin")
        let response = try await global.withClient { client in
            try await client.tenants.create(request, options: global.callOptions())
        }
        if global.json { return try printJSON(response) }
        printFields(
            tenantFields(response.tenant) + [("owner", "\(response.owner.email) (\(response.owner.id))")])
    }
}

/// `moatctl tenant get`: one tenant and its policy.
struct TenantGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Show a tenant and its policy.")

    @Argument(help: ArgumentHelp("The tenant, by id (tn_...) or slug.", valueName: "tenant"))
    var tenant: String

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        var request = Moat_V1_GetTenantRequest()
        request.tenant = tenant
        let response = try await global.withClient { client in
            try await client.tenants.get(request, options: global.callOptions())
        }
        if global.json { return try printJSON(response) }
        printFields(tenantFields(response) + policyFields(response.policy))
    }
}

/// `moatctl tenant list`: tenants by slug, a page or all of them.
struct TenantListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List tenants, ordered by slug.")

    @OptionGroup var page: PageOptions
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let (tenants, next) = try await global.withClient { client in
            try await page.collect { pageSize, pageToken in
                var request = Moat_V1_ListTenantsRequest()
                request.pageSize = pageSize
                request.pageToken = pageToken
                let response = try await client.tenants.list(request, options: global.callOptions())
                return (response.tenants, response.nextPageToken)
            }
        }
        if global.json {
            var response = Moat_V1_ListTenantsResponse()
            response.tenants = tenants
            response.nextPageToken = next
            return try printJSON(response)
        }
        printTable(
            ["ID", "SLUG", "NAME", "CREATED"],
            tenants.map { [$0.id, $0.slug, $0.name, formatTime($0.createdAtUnix)] })
        page.reportMore(next)
    }
}

/// `moatctl tenant policy`: show a tenant's policy, or change some of it.
struct TenantPolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Show a tenant's policy, or change the settings given.",
        discussion: """
            With no setting, prints the policy. Settings left out keep their value; \
            changes apply to the next call. Durations take a unit: s, m, h, d or w, \
            e.g. 90m, 36h, 14d, 1h30m (a bare number is seconds).
            """)

    @Argument(help: ArgumentHelp("The tenant, by id (tn_...) or slug.", valueName: "tenant"))
    var tenant: String

    @Option(name: .long, help: ArgumentHelp("Minimum password length (8 or more).", valueName: "n"))
    var minPasswordLength: UInt32?

    @Option(
        name: .long, help: ArgumentHelp("End a session unused this long (e.g. 14d).", valueName: "duration"),
        transform: parseDuration)
    var idleTimeout: UInt64?

    @Option(
        name: .long, help: ArgumentHelp("End a session this long after sign-in (e.g. 30d).", valueName: "duration"),
        transform: parseDuration)
    var absoluteLifetime: UInt64?

    @Option(
        name: .customLong("require-2fa"),
        help: ArgumentHelp("Make every member enrol in two-factor.", valueName: "true|false"))
    var requireTwoFactor: Bool?

    @Option(
        name: .long, help: ArgumentHelp("Failed sign-ins before the account must wait.", valueName: "n"))
    var lockoutThreshold: UInt32?

    @Option(
        name: .long, help: ArgumentHelp("The first wait; it doubles per failure (e.g. 60s).", valueName: "duration"),
        transform: parseDuration)
    var lockoutBaseDelay: UInt64?

    @Option(
        name: .long, help: ArgumentHelp("The longest wait (e.g. 1h).", valueName: "duration"),
        transform: parseDuration)
    var lockoutMaxDelay: UInt64?

    @Option(
        name: .long,
        help: ArgumentHelp("Sessions per user; past it the oldest is revoked. 0: no cap.", valueName: "n"))
    var maxSessions: UInt32?

    @OptionGroup var global: GlobalOptions

    /// The change asked for, or nil if no setting was given.
    var update: Moat_V1_UpdatePolicyRequest? {
        let given: [Any?] = [
            minPasswordLength, idleTimeout, absoluteLifetime, requireTwoFactor, lockoutThreshold, lockoutBaseDelay,
            lockoutMaxDelay, maxSessions,
        ]
        guard given.contains(where: { $0 != nil }) else { return nil }
        var request = Moat_V1_UpdatePolicyRequest()
        request.tenant = tenant
        if let minPasswordLength { request.minPasswordLength = minPasswordLength }
        if let idleTimeout { request.sessionIdleTimeoutSeconds = idleTimeout }
        if let absoluteLifetime { request.sessionAbsoluteLifetimeSeconds = absoluteLifetime }
        if let requireTwoFactor { request.requireTwoFactor = requireTwoFactor }
        if let lockoutThreshold { request.lockoutThreshold = lockoutThreshold }
        if let lockoutBaseDelay { request.lockoutBaseDelaySeconds = lockoutBaseDelay }
        if let lockoutMaxDelay { request.lockoutMaxDelaySeconds = lockoutMaxDelay }
        if let maxSessions { request.maxSessionsPerUser = maxSessions }
        return request
    }

    func run() async throws {
        let update = update
        let policy = try await global.withClient { client in
            if let update {
                return try await client.tenants.updatePolicy(update, options: global.callOptions())
            }
            var request = Moat_V1_GetTenantRequest()
            request.tenant = tenant
            return try await client.tenants.get(request, options: global.callOptions()).policy
        }
        if global.json { return try printJSON(policy) }
        printFields(policyFields(policy))
    }
}

/// A tenant's identity as `key value` rows.
func tenantFields(_ tenant: Moat_V1_Tenant) -> [(String, String)] {
    [
        ("id", tenant.id),
        ("slug", tenant.slug),
        ("name", tenant.name),
        ("created", formatTime(tenant.createdAtUnix)),
        ("status", tenant.pendingDeletion ? "pending deletion, purged \(formatTime(tenant.purgeAfterUnix))" : "active"),
    ]
}

/// A policy as `key value` rows, keyed like the flags of `tenant policy`.
func policyFields(_ policy: Moat_V1_TenantPolicy) -> [(String, String)] {
    [
        ("min-password-length", "\(policy.minPasswordLength)"),
        ("idle-timeout", formatDuration(seconds: policy.sessionIdleTimeoutSeconds)),
        ("absolute-lifetime", formatDuration(seconds: policy.sessionAbsoluteLifetimeSeconds)),
        ("require-2fa", "\(policy.requireTwoFactor)"),
        ("lockout-threshold", "\(policy.lockoutThreshold)"),
        ("lockout-base-delay", formatDuration(seconds: policy.lockoutBaseDelaySeconds)),
        ("lockout-max-delay", formatDuration(seconds: policy.lockoutMaxDelaySeconds)),
        ("max-sessions", policy.maxSessionsPerUser == 0 ? "0 (no cap)" : "\(policy.maxSessionsPerUser)"),
    ]
}
