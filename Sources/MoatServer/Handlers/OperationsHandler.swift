import Foundation
import MoatProto
import MoatRPC
import MoatStore

/// `moat.v1.Operations`: backups, master-key rotation and metrics, for
/// administrator callers (the generated method table refuses everyone else).
struct OperationsHandler: Moat_V1_OperationsService {
    let store: StoreBackend
    let keyRotation: KeyRotation
    let metrics: MetricsExporter?

    func backup(request: Moat_V1_BackupRequest, context: RequestContext) async throws -> Moat_V1_BackupResponse {
        let path = request.path
        guard path.hasPrefix("/"), !path.hasSuffix("/"), !path.contains("\u{0}") else {
            throw RPCError(
                code: .invalidArgument, message: "the backup path must be an absolute file path on moatd's host",
                reason: OperationsReason.backupPathInvalid.rawValue)
        }
        guard case .sqlite(let store) = store else {
            throw RPCError(
                code: .failedPrecondition,
                message: "moatd runs on PostgreSQL: back it up with PostgreSQL's own tools (pg_dump, or "
                    + "pg_basebackup with WAL archiving), and keep master.key with it",
                reason: OperationsReason.backupUnsupported.rawValue)
        }
        let started = ContinuousClock.now
        do {
            let result = try await store.backup(to: path)
            let elapsed = ContinuousClock.now - started
            return .with {
                $0.path = result.path
                $0.sizeBytes = result.sizeBytes
                $0.lastEventSequence = result.lastEventSequence
                $0.durationMs = UInt64(max(0, elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000))
            }
        } catch let error as StoreError where error.reason == .backupExists {
            throw RPCError(code: .alreadyExists, message: "\(path) already exists", reason: OperationsReason.backupExists.rawValue)
        } catch let error as StoreError {
            throw RPCError(
                code: .internal, message: "the backup could not be written: \(error.message)", reason: OperationsReason.backupFailed.rawValue,
                cause: error)
        }
    }

    func rotateKey(request: Moat_V1_RotateKeyRequest, context: RequestContext) async throws -> Moat_V1_RotateKeyResponse {
        let status = try await keyRotation.rotate()
        return .with { $0.status = .init(status) }
    }

    func keyStatus(request: Moat_V1_KeyStatusRequest, context: RequestContext) async throws -> Moat_V1_KeyStatusResponse {
        .init(try await keyRotation.status())
    }

    func metrics(request: Moat_V1_MetricsRequest, context: RequestContext) async throws -> Moat_V1_MetricsResponse {
        guard let metrics else {
            throw RPCError(
                code: .failedPrecondition, message: "this process did not bootstrap a metrics backend",
                reason: OperationsReason.metricsDisabled.rawValue)
        }
        let text = await metrics.render()
        return .with { $0.text = text }
    }
}

extension Moat_V1_KeyStatusResponse {
    init(_ status: KeyStatus) {
        self.init()
        currentKeyID = status.currentKeyID
        retiringKeyID = status.retiringKeyID ?? ""
        sealedUnderCurrent = UInt64(status.sealedUnderCurrent)
        sealedUnderRetiring = UInt64(status.sealedUnderRetiring)
        retiredKeyIds = status.retiredKeyIDs
    }
}
