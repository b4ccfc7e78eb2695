/// The transport's limits. Every one is configurable; the defaults suit a
/// daemon serving a handful of local services.
public struct TransportLimits: Sendable, Equatable {
    /// The largest frame accepted in either direction, in bytes. Default 1 MiB.
    public var maxFrameSize: Int = 1 << 20
    /// Calls in flight per connection. At the limit the server stops reading
    /// from that connection until one finishes (backpressure, not errors).
    /// Default 256.
    public var maxInFlightPerConnection: Int = 256
    /// Connections open at once; more are refused with RESOURCE_EXHAUSTED.
    /// Default 1024.
    public var maxConnections: Int = 1024
    /// Time allowed to complete a frame once its first byte arrived.
    /// Default 10 s.
    public var frameTimeout: Duration = .seconds(10)
    /// A connection with no call in flight and no bytes received for this
    /// long is closed. Default 5 minutes.
    public var idleTimeout: Duration = .seconds(300)
    /// The deadline of a call that names none. Default 10 s.
    public var defaultDeadline: Duration = .seconds(10)
    /// The longest deadline a call may ask for; longer ones are clamped.
    /// Default 60 s.
    public var maxDeadline: Duration = .seconds(60)
    /// How long a graceful shutdown waits for calls in flight. Default 30 s.
    public var shutdownGracePeriod: Duration = .seconds(30)

    /// The defaults.
    public init() {}

    /// The deadline for a call that asked for `timeoutMilliseconds` (0: the
    /// default), clamped to the maximum.
    public func deadline(forTimeoutMilliseconds timeoutMilliseconds: UInt32) -> Duration {
        guard timeoutMilliseconds > 0 else { return min(defaultDeadline, maxDeadline) }
        return min(.milliseconds(Int64(timeoutMilliseconds)), maxDeadline)
    }
}

extension Duration {
    /// The duration in whole nanoseconds, saturating.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
