import Foundation
public import MoatCrypto

/// Password hashing settings.
public struct HashingConfiguration: Sendable, Equatable {
    /// Argon2id parameters for new hashes. Default m=19456 KiB, t=2, p=1
    /// (OWASP).
    public var parameters = Argon2Parameters()
    /// Hashing threads. Default: the number of cores.
    public var workers = ProcessInfo.processInfo.activeProcessorCount
    /// Hashes that may wait for a thread; past this, OVERLOADED.
    /// Default 64.
    public var queueCapacity = 64

    public init() {}
}

/// Where Argon2id runs. The daemon's implementation is a bounded pool of
/// low-priority threads of its own (MoatServer's `HashingThreadPool`), so a
/// burst of sign-ins never occupies the threads that serve session checks
/// and never queues without bound.
public protocol HashingExecutor: Sendable {
    /// Runs `body` (blocking, CPU-bound) and returns its result. Throws
    /// ``DomainError/hashingOverloaded`` at once, without running `body`,
    /// when the executor has no room for it.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T
}

extension DomainError {
    /// The answer when the hashing executor is full: RESOURCE_EXHAUSTED
    /// `OVERLOADED`, retry after a second.
    public static var hashingOverloaded: DomainError {
        DomainError(
            .resourceExhausted, .overloaded, "too many password checks in progress; try again shortly",
            details: ["retry_after_seconds": "1"])
    }
}

/// Runs hashes on the calling task, unbounded. For tests and tools that
/// hash a few passwords; never for a server (it would hash on whatever
/// thread serves the call).
public struct InlineHashingExecutor: HashingExecutor {
    /// Creates the executor.
    public init() {}

    /// Runs `body` at once.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try body()
    }
}

/// Argon2id password hashes with the configured parameters, on an injected
/// executor. When the executor is full, callers get RESOURCE_EXHAUSTED
/// (`OVERLOADED`) at once.
public final class PasswordHasher: Sendable {
    /// The settings in use.
    public let configuration: HashingConfiguration
    private let executor: any HashingExecutor
    /// A hash of a random password, verified against when an email is
    /// unknown so that answer costs the same as a known one.
    private let decoy: String

    /// Uses `executor` for every hash and verification.
    public init(configuration: HashingConfiguration = HashingConfiguration(), executor: any HashingExecutor) throws {
        self.configuration = configuration
        self.executor = executor
        self.decoy = try Argon2id.hash(password: SecureBytes.random(16), parameters: configuration.parameters)
    }

    /// A new PHC string for the password (NFC-normalized bytes).
    public func hash(_ password: [UInt8]) async throws -> String {
        let parameters = configuration.parameters
        return try await executor.run { try Argon2id.hash(password: password, parameters: parameters) }
    }

    /// Whether the password matches the PHC string.
    public func verify(_ password: [UInt8], against phc: String) async throws -> Bool {
        try await executor.run { Argon2id.verify(password: password, phc: phc) }
    }

    /// The same work as a verification, for an unknown account; always false.
    public func verifyDecoy(_ password: [UInt8]) async throws -> Bool {
        let decoy = self.decoy
        _ = try await executor.run { Argon2id.verify(password: password, phc: decoy) }
        return false
    }

    /// Whether a stored hash was made with other parameters than today's.
    public func needsRehash(_ phc: String) -> Bool {
        Argon2id.needsRehash(phc: phc, parameters: configuration.parameters)
    }
}
