/// How a ``Database`` is opened.
public struct StoreConfiguration: Sendable, Hashable {
    /// The database file. Created if missing; its directory must exist. The
    /// WAL (`-wal`) and shared-memory (`-shm`) files live beside it. A file
    /// is required: `:memory:` cannot be shared by the writer and readers.
    public var path: String
    /// Commit durability: ``SynchronousMode/full`` (default) fsyncs every
    /// commit; ``SynchronousMode/normal`` trades the last commits on power
    /// loss for speed.
    public var synchronous: SynchronousMode
    /// How many reader connections (and reader threads) serve ``Database/read(_:)``.
    public var readerCount: Int
    /// The most writes the writer puts into one group-commit transaction.
    public var maxBatchSize: Int
    /// How long a connection waits for a lock held by another process.
    public var busyTimeout: Duration
    /// Prepared statements cached per connection.
    public var statementCacheCapacity: Int
    /// Bytes of the database file each reader connection maps into memory
    /// (SQLite's `mmap_size`): a point lookup then reads b-tree pages from
    /// the mapping instead of a `pread` per page. 0 reads with `pread` only.
    /// The writer does not map.
    public var readerMmapSize: Int

    /// Creates a configuration; every parameter but `path` has a default.
    public init(
        path: String,
        synchronous: SynchronousMode = .full,
        readerCount: Int = 4,
        maxBatchSize: Int = 128,
        busyTimeout: Duration = .seconds(5),
        statementCacheCapacity: Int = 64,
        readerMmapSize: Int = 1 << 30
    ) {
        self.path = path
        self.synchronous = synchronous
        self.readerCount = readerCount
        self.maxBatchSize = maxBatchSize
        self.busyTimeout = busyTimeout
        self.statementCacheCapacity = statementCacheCapacity
        self.readerMmapSize = readerMmapSize
    }

    /// Throws `INVALID_CONFIGURATION` for values the store cannot run with.
    public func validate() throws {
        func invalid(_ message: String) -> StoreError { StoreError(.invalidConfiguration, message: message) }
        if path.allSatisfy(\.isWhitespace) || path == ":memory:" || path.hasPrefix("file::memory:") {
            throw invalid("path must name a database file, got \"\(path)\"")
        }
        if path.contains("\0") { throw invalid("path contains a NUL character") }
        if !(1...64).contains(readerCount) { throw invalid("readerCount must be 1...64, got \(readerCount)") }
        if !(1...100_000).contains(maxBatchSize) {
            throw invalid("maxBatchSize must be 1...100000, got \(maxBatchSize)")
        }
        if busyTimeout < .zero { throw invalid("busyTimeout must not be negative") }
        if !(0...(1 << 40)).contains(readerMmapSize) {
            throw invalid("readerMmapSize must be 0...\(1 << 40), got \(readerMmapSize)")
        }
        if !(0...10_000).contains(statementCacheCapacity) {
            throw invalid("statementCacheCapacity must be 0...10000, got \(statementCacheCapacity)")
        }
    }
}
