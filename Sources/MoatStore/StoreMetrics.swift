/// A snapshot of a ``Database``'s counters (``Database/metrics``).
public struct StoreMetrics: Sendable, Hashable {
    /// Batch transactions committed (one fsync each with `synchronous=FULL`).
    public var commits: Int = 0
    /// Write bodies whose changes were committed.
    public var writesCommitted: Int = 0
    /// Write bodies that failed: they threw, or their batch could not begin
    /// or commit.
    public var writesFailed: Int = 0
    /// Batch transactions that failed to begin or commit, or were aborted.
    public var failedBatches: Int = 0
    /// The most write bodies run in one batch transaction.
    public var largestBatch: Int = 0
    /// Reads completed (successfully or not).
    public var reads: Int = 0
    /// Writes waiting for the writer when the snapshot was taken.
    public var queuedWrites: Int = 0
    /// Reads waiting for a reader when the snapshot was taken.
    public var queuedReads: Int = 0

    /// Committed writes per commit: the group-commit factor (0 before any commit).
    public var writesPerCommit: Double {
        commits == 0 ? 0 : Double(writesCommitted) / Double(commits)
    }

    /// Creates an all-zero snapshot.
    public init() {}
}
