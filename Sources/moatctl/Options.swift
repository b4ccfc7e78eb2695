import ArgumentParser
import Foundation

/// `--tenant`, defaulting to `$MOAT_TENANT`.
struct TenantOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The tenant, by id or slug (default $MOAT_TENANT).", valueName: "tenant"))
    var tenant: String?

    /// The tenant to act in: the flag, else `$MOAT_TENANT`.
    var value: String {
        if let tenant, !tenant.isEmpty { return tenant }
        return ProcessInfo.processInfo.environment["MOAT_TENANT"] ?? ""
    }

    func validate() throws {
        if value.isEmpty { throw ValidationError("Missing '--tenant <tenant>' (or set MOAT_TENANT).") }
    }
}

/// `--session`, defaulting to `$MOAT_SESSION`.
struct SessionOption: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "A session token to act with (default $MOAT_SESSION, which is safer: arguments show in `ps`).",
            valueName: "token"))
    var session: String?

    /// The session token, if any: the flag, else `$MOAT_SESSION`.
    var token: String? {
        if let session, !session.isEmpty { return session }
        let environment = ProcessInfo.processInfo.environment["MOAT_SESSION"] ?? ""
        return environment.isEmpty ? nil : environment
    }

    /// The session token, or a usage error saying how to get one.
    func required() throws -> String {
        guard let token else {
            throw ValidationError(
                "No session: sign in with 'moatctl signin', then set MOAT_SESSION (or pass '--session <token>').")
        }
        return token
    }
}

/// `--page-size`, `--page-token`, `--all` of list commands.
struct PageOptions: ParsableArguments {
    @Option(name: .long, help: "Items per page, 1 to 500 (default: the daemon's, 50).")
    var pageSize: UInt32?

    @Option(name: .long, help: ArgumentHelp("Start at this page (a previous page's next token).", valueName: "token"))
    var pageToken: String?

    @Flag(name: .long, help: "Fetch every page.")
    var all = false

    func validate() throws {
        if let pageSize, !(1...500).contains(pageSize) {
            throw ValidationError("--page-size must be between 1 and 500.")
        }
    }

    /// Fetches one page, or with `--all` every page from `--page-token` on.
    /// Returns the items and the token of the page after them ("" at the end).
    func collect<Item>(_ fetch: (_ pageSize: UInt32, _ pageToken: String) async throws -> ([Item], String))
        async throws -> ([Item], String)
    {
        var items: [Item] = []
        var token = pageToken ?? ""
        var seen: Set<String> = []
        while true {
            let (page, next) = try await fetch(pageSize ?? 0, token)
            items += page
            // With --all, stop at the last page (or if the daemon repeats a token).
            guard all, !next.isEmpty, seen.insert(next).inserted else { return (items, all ? "" : next) }
            token = next
        }
    }

    /// After a table: where the next page starts, on standard error.
    func reportMore(_ nextPageToken: String) {
        guard !nextPageToken.isEmpty else { return }
        printError("more: --page-token \(nextPageToken) (or --all)")
    }
}
