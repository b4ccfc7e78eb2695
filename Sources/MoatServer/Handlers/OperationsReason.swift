/// Stable reasons of the operator methods (`moat.v1.Operations`: backup,
/// key rotation, metrics). Part of the wire contract, pinned with the
/// others by the reason catalog test.
public enum OperationsReason: String, Sendable, CaseIterable {
    /// The backup path is empty, relative or not in an existing directory.
    case backupPathInvalid = "BACKUP_PATH_INVALID"
    /// A file already exists at the backup path.
    case backupExists = "BACKUP_EXISTS"
    /// The backup could not be written.
    case backupFailed = "BACKUP_FAILED"
    /// moatd runs on PostgreSQL, which is backed up with its own tools.
    case backupUnsupported = "BACKUP_UNSUPPORTED"
    /// A key rotation is already running.
    case rotationInProgress = "ROTATION_IN_PROGRESS"
    /// The new master key could not be written.
    case keyRotationFailed = "KEY_ROTATION_FAILED"
    /// This process exports no metrics.
    case metricsDisabled = "METRICS_DISABLED"
}
