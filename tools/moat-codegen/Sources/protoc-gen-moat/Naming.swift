import SwiftProtobufPluginLibrary

enum Naming {
    /// `SignIn` -> `signIn`, `RevokeOthers` -> `revokeOthers`,
    /// `TOTPVerify` -> `totpVerify`, `URL` -> `url`: the leading word is
    /// lowercased, the rest of the name is kept as written.
    static func lowerCamel(_ name: String) -> String {
        let scalars = Array(name.unicodeScalars)
        var upperRun = 0
        while upperRun < scalars.count, isUpper(scalars[upperRun]) { upperRun += 1 }
        let lowered: Int
        if upperRun <= 1 || upperRun == scalars.count {
            lowered = upperRun
        } else if isLower(scalars[upperRun]) {
            // "TOTPVerify": the last capital starts the next word.
            lowered = upperRun - 1
        } else {
            // "URL2Go", "ID_Card": the whole run is the first word.
            lowered = upperRun
        }
        var result = String.UnicodeScalarView()
        for (index, scalar) in scalars.enumerated() {
            if index < lowered {
                result.append(contentsOf: String(scalar).lowercased().unicodeScalars)
            } else {
                result.append(scalar)
            }
        }
        return String(result)
    }

    /// The identifier, in backticks if it is a Swift keyword.
    static func escaped(_ identifier: String) -> String {
        keywords.contains(identifier) ? "`\(identifier)`" : identifier
    }

    /// Identifiers that cannot be used bare as a declaration name or after a
    /// dot. Over-quoting is harmless, so this errs on the side of quoting.
    static let keywords: Set<String> =
        swiftKeywordsUsedInDeclarations
        .union(swiftKeywordsUsedInStatements)
        .union(swiftKeywordsUsedInExpressionsAndTypes)
        .union([
            "actor", "any", "async", "await", "borrowing", "consume", "consuming", "copy",
            "discard", "each", "isolated", "macro", "nonisolated", "package", "precedencegroup",
            "some", "sending", "throws", "rethrows",
        ])

    private static func isUpper(_ scalar: Unicode.Scalar) -> Bool { ("A"..."Z").contains(scalar) }
    private static func isLower(_ scalar: Unicode.Scalar) -> Bool { ("a"..."z").contains(scalar) }
}
