public import MoatCrypto

/// OWASP's minimum Argon2id parameters (Password Storage Cheat Sheet): any
/// one row is enough, since more passes buy back less memory.
public enum HashingGuardRails {
    /// The rows of OWASP's table: memory (KiB) and iterations, p=1.
    public static let owaspMinimums: [(memoryKiB: Int, iterations: Int)] = [
        (47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5),
    ]

    /// Whether the parameters meet at least one row of OWASP's table.
    public static func meetsOWASPMinimum(_ parameters: Argon2Parameters) -> Bool {
        owaspMinimums.contains { parameters.memoryKiB >= $0.memoryKiB && parameters.iterations >= $0.iterations }
    }

    /// Why the parameters are weak, for the error and the start-up warning.
    static func weakness(_ parameters: Argon2Parameters) -> String {
        "Argon2id m=\(parameters.memoryKiB) KiB, t=\(parameters.iterations) is below OWASP's minimum "
            + "(m=19456 KiB with t=2, or m=47104/t=1, 12288/t=3, 9216/t=4, 7168/t=5)"
    }
}

extension ConfigurationLoader {
    /// Refuses hashing parameters below OWASP's minimum unless
    /// `hashing.allow_weak = true`.
    static func validateHashing(_ configuration: MoatConfiguration) throws {
        let parameters = configuration.hashing.parameters
        guard !configuration.allowWeakHashing, !HashingGuardRails.meetsOWASPMinimum(parameters) else { return }
        let key = parameters.memoryKiB < 19456 ? "hashing.memory_kib" : "hashing.iterations"
        throw ConfigurationError(
            "\(key): \(HashingGuardRails.weakness(parameters)); set hashing.allow_weak = true to allow it (benchmarks only)")
    }
}

extension ConfigurationError {
    /// The setting the error is about (`limits.max_connections`, `--set`),
    /// or nil when the error concerns the whole file (it cannot be read or
    /// parsed).
    public var key: String? {
        guard let colon = description.range(of: ": ") else { return nil }
        let head = description[..<colon.lowerBound]
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789_.-, ")
        guard !head.isEmpty, head.allSatisfy({ allowed.contains($0) }), !head.hasPrefix("cannot") else { return nil }
        return String(head)
    }

    /// What is wrong with ``key``'s value (the whole message when there is
    /// no key).
    public var reason: String {
        guard key != nil, let colon = description.range(of: ": ") else { return description }
        return String(description[colon.upperBound...])
    }
}
