import Foundation

/// The rules a new password must meet. No composition rules: length, not
/// common, not the email.
public enum PasswordRules {
    /// The most characters a password may have.
    public static let maximumLength = 1024

    /// The password as it is hashed: NFC-normalized, otherwise exactly as
    /// given (no trimming, no truncation), so the same password typed on
    /// different systems hashes the same.
    public static func normalized(_ password: String) -> [UInt8] {
        Array(password.precomposedStringWithCanonicalMapping.utf8)
    }

    /// Checks a new password against a tenant's minimum and the common list.
    ///
    /// Lengths count Unicode code points of the NFC form.
    public static func check(_ password: String, minimumLength: Int, email: String) throws(DomainError) {
        let length = password.precomposedStringWithCanonicalMapping.unicodeScalars.count
        let minimum = max(minimumLength, TenantPolicy.passwordFloor)
        guard length >= minimum else {
            throw DomainError(
                .invalidArgument, .passwordTooShort, "the password must have at least \(minimum) characters",
                details: ["min_length": "\(minimum)"])
        }
        guard length <= maximumLength else {
            throw DomainError(
                .invalidArgument, .passwordTooLong, "the password must have at most \(maximumLength) characters",
                details: ["max_length": "\(maximumLength)"])
        }
        let lowered = password.lowercased()
        guard !CommonPasswords.contains(lowered) else {
            throw DomainError(.invalidArgument, .passwordTooCommon, "the password is on the list of common passwords")
        }
        guard lowered != email.lowercased() else {
            throw DomainError(.invalidArgument, .passwordIsEmail, "the password must not be the email address")
        }
    }
}

/// The common-password list (shipped in the binary from
/// Resources/common-passwords.txt), compared lowercased.
public enum CommonPasswords {
    static let entries: Set<String> = {
        let text = String(decoding: PackageResources.common_passwords_txt, as: UTF8.self)
        var set = Set<String>()
        for line in text.split(whereSeparator: \.isNewline) {
            let entry = line.trimmingCharacters(in: .whitespaces).lowercased()
            if !entry.isEmpty { set.insert(entry) }
        }
        return set
    }()

    /// Whether the (lowercased) password is on the list.
    public static func contains(_ lowercasedPassword: String) -> Bool { entries.contains(lowercasedPassword) }

    /// Entries on the list.
    public static var count: Int { entries.count }
}

/// Email addresses as stored and compared: trimmed, lowercased.
public enum EmailAddress {
    /// The longest email accepted (RFC 5321's path limit).
    public static let maximumLength = 254

    /// Normalizes and checks an email; INVALID_ARGUMENT (`EMAIL_INVALID`)
    /// when it is empty, too long or not of the form local@domain.
    public static func normalize(_ email: String) throws(DomainError) -> String {
        // NFC so that a composed and a decomposed "é" are one address in
        // every store (SQLite compares bytes).
        let normalized = email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            .precomposedStringWithCanonicalMapping
        guard !normalized.isEmpty else { throw .invalid(.emailInvalid, "the email is empty") }
        guard normalized.utf8.count <= maximumLength else {
            throw .invalid(.emailInvalid, "the email is longer than \(maximumLength) bytes")
        }
        let parts = normalized.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."),
            !parts[1].hasSuffix("."),
            !normalized.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F })
        else {
            throw .invalid(.emailInvalid, "the email is not of the form name@domain")
        }
        return normalized
    }
}
