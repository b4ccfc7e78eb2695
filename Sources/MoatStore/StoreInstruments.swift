import Metrics

/// The store's swift-metrics instruments (the daemon bootstraps the
/// backend; without one they record nothing).
enum StoreInstruments {
    /// Wall time of one batch transaction, `BEGIN` to `COMMIT` (the fsync
    /// with `synchronous=FULL`).
    static let commit = Metrics.Timer(label: "moat_store_commit_duration_seconds")
    /// Write bodies per committed batch (the group-commit factor).
    static let batchSize = Recorder(label: "moat_store_write_batch_size", aggregate: true)
    /// Time a read waited for a reader connection.
    static let readWait = Metrics.Timer(label: "moat_store_read_wait_seconds")

    /// Records the time since `start` on `timer`.
    static func record(_ timer: Metrics.Timer, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        timer.recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
