import Foundation
import Logging
import MoatCore
import MoatRPC
import MoatStore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where a master key stands (`moatctl key status`).
public struct KeyStatus: Sendable, Equatable {
    /// The key new secrets are sealed under.
    public var currentKeyID: String
    /// The key a rotation is retiring, if one runs.
    public var retiringKeyID: String?
    /// Secrets sealed under the current key.
    public var sealedUnderCurrent: Int
    /// Secrets still sealed under the retiring key.
    public var sealedUnderRetiring: Int
    /// Keys retired by earlier rotations, oldest first.
    public var retiredKeyIDs: [String]
}

/// Master-key rotation while moatd serves: a new key becomes current at
/// once (new secrets are sealed under it), then a background loop re-seals
/// every stored secret in batches of ``batchSize`` (each batch one write
/// transaction that also counts progress in `meta`), and retires the old key
/// (deletes `master.<id>.key`) in the transaction that sees nothing sealed
/// under it. A restart resumes: rows still naming the old key are the work
/// left (see ``MasterKeys``).
public actor KeyRotation {
    /// Secrets re-sealed per write transaction.
    public let batchSize: Int
    private let directory: String
    private let store: any MasterKeyStore
    private let keyring: SecretKeyring
    private let logger: Logger
    private var retiring: String?
    /// Set while ``rotate()`` runs: it suspends, and a second call must not
    /// start another rotation meanwhile.
    private var starting = false
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    /// ``untilRetired()`` callers, resumed when the retiring key is retired.
    private var retiredWaiters: [CheckedContinuation<Void, Never>] = []

    init(
        directory: String, store: any MasterKeyStore, keyring: SecretKeyring, retiring: String?, logger: Logger,
        batchSize: Int = 100
    ) {
        self.directory = directory
        self.store = store
        self.keyring = keyring
        self.retiring = retiring
        self.logger = logger
        self.batchSize = batchSize
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Introduces a new key and starts re-sealing under it. Throws
    /// FAILED_PRECONDITION `ROTATION_IN_PROGRESS` while a rotation runs.
    public func rotate() async throws -> KeyStatus {
        if starting || retiring != nil {
            throw RPCError(
                code: .failedPrecondition,
                message: "a rotation from key \(retiring ?? keyring.currentKeyID) is still re-sealing secrets",
                reason: OperationsReason.rotationInProgress.rawValue)
        }
        starting = true
        defer { starting = false }
        let old = keyring.currentKeyID
        let new: KeyFile
        do {
            MasterKeys.unlinkIfPresent(directory, MasterKeys.stagedFileName)
            new = try KeyFile.create(MasterKeys.path(directory, MasterKeys.stagedFileName))
            // Keep the old key under its own name before the database stops
            // naming it as current.
            let kept = MasterKeys.path(directory, MasterKeys.retainedFileName(old))
            unlink(kept)
            guard link(MasterKeys.path(directory, KeyFile.fileName), kept) == 0 else {
                throw DaemonStartError("cannot keep the old key as \(kept): \(String(cString: strerror(errno)))")
            }
            MasterKeys.syncDirectory(directory)
            let keptKey = try KeyFile.load(directory: directory, mayCreate: false, name: MasterKeys.retainedFileName(old))
            guard keptKey.fingerprint == old else {
                throw DaemonStartError("master.key no longer holds the key in use (\(old)); not rotating")
            }
        } catch {
            logger.error("key rotation could not start", metadata: ["moat.error": "\(error)"])
            throw RPCError(code: .internal, message: "the new key could not be written: \(error)", reason: OperationsReason.keyRotationFailed.rawValue)
        }
        _ = try await store.updateMeta([
            MasterKeys.currentKey: new.fingerprint, MasterKeys.rotationFrom: old, MasterKeys.progress: "0",
        ], ifNothingSealedUnder: nil)
        do {
            try MasterKeys.move(directory, MasterKeys.stagedFileName, to: KeyFile.fileName)
        } catch {
            // The database names the new key; the next start finishes the rename.
            logger.error("cannot move the new key into place", metadata: ["moat.error": "\(error)"])
        }
        keyring.rotate(to: (id: new.fingerprint, key: new.key))
        retiring = old
        logger.notice(
            "master key rotated; re-sealing secrets",
            metadata: ["moat.key_id": "\(new.fingerprint)", "moat.retiring_key_id": "\(old)"])
        wake.yield()
        return try await status()
    }

    /// The current key, a rotation in progress and the secrets under each.
    public func status() async throws -> KeyStatus {
        let counts = try await store.sealedSecretCounts()
        let meta = try await store.metaStrings([MasterKeys.retiredKeys])
        let current = keyring.currentKeyID
        return KeyStatus(
            currentKeyID: current, retiringKeyID: retiring, sealedUnderCurrent: counts[current] ?? 0,
            sealedUnderRetiring: retiring.map { counts[$0] ?? 0 } ?? 0,
            retiredKeyIDs: (meta[MasterKeys.retiredKeys] ?? "").split(separator: ",").map(String.init))
    }

    /// Returns once no key is being retired: at once if none is, else when
    /// the running rotation retires its old key (tests wait on it instead
    /// of polling ``status()``).
    public func untilRetired() async {
        guard retiring != nil else { return }
        await withCheckedContinuation { retiredWaiters.append($0) }
    }

    /// Re-seals until nothing is under the retiring key, then retires it.
    /// Returns early on a graceful shutdown (the next start resumes).
    func resealPending() async {
        while let from = retiring, !Task.isShuttingDownGracefully {
            do {
                let keyring = self.keyring
                let done = try await store.resealSecrets(
                    sealedUnder: from, limit: batchSize, progressKey: MasterKeys.progress
                ) { sealed, tenant, user in
                    try keyring.resealTOTPSecret(sealed, tenant: tenant, user: user)
                }
                if done > 0 {
                    // Let the writer serve other callers between batches.
                    try await Task.sleep(for: .milliseconds(5))
                    continue
                }
                try await retire(from)
            } catch {
                logger.error(
                    "re-sealing under the new key failed; retrying",
                    metadata: ["moat.retiring_key_id": "\(from)", "moat.error": "\(error)"])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(5)) }
            }
        }
    }

    private func retire(_ from: String) async throws {
        let meta = try await store.metaStrings([MasterKeys.retiredKeys])
        let retired = (meta[MasterKeys.retiredKeys] ?? "").split(separator: ",").map(String.init) + [from]
        let done = try await store.updateMeta(
            [MasterKeys.rotationFrom: nil, MasterKeys.progress: nil, MasterKeys.retiredKeys: retired.joined(separator: ",")],
            ifNothingSealedUnder: from)
        guard done else { return }
        keyring.retire(from)
        retiring = nil
        let waiters = retiredWaiters
        retiredWaiters = []
        for waiter in waiters { waiter.resume() }
        MasterKeys.unlinkIfPresent(directory, MasterKeys.retainedFileName(from))
        logger.notice("old master key retired", metadata: ["moat.retired_key_id": "\(from)"])
    }

    /// Waits for rotations (and resumes one found at start) until shutdown.
    func serve() async {
        await resealPending()
        for await _ in wakes.cancelOnGracefulShutdown() {
            await resealPending()
        }
    }
}

/// Runs ``KeyRotation``'s background re-sealing as a service.
struct KeyRotationService: Service {
    let rotation: KeyRotation

    func run() async throws {
        await rotation.serve()
    }
}
