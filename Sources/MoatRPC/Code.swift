/// A call's status code. The values are gRPC's canonical status codes, with
/// the same numbers, so the wire `moat.rpc.v1.Code` maps one to one.
public struct Code: Hashable, Sendable, CustomStringConvertible {
    /// The wire number of the code.
    public let rawValue: Int

    /// Wraps a wire number; numbers outside 0...16 become `unknown`.
    public init(rawValue: Int) {
        self.rawValue = (0...16).contains(rawValue) ? rawValue : 2
    }

    private init(_ value: Int) { self.rawValue = value }

    public static let ok = Code(0)
    public static let cancelled = Code(1)
    public static let unknown = Code(2)
    public static let invalidArgument = Code(3)
    public static let deadlineExceeded = Code(4)
    public static let notFound = Code(5)
    public static let alreadyExists = Code(6)
    public static let permissionDenied = Code(7)
    public static let resourceExhausted = Code(8)
    public static let failedPrecondition = Code(9)
    public static let aborted = Code(10)
    public static let outOfRange = Code(11)
    public static let unimplemented = Code(12)
    public static let `internal` = Code(13)
    public static let unavailable = Code(14)
    public static let dataLoss = Code(15)
    public static let unauthenticated = Code(16)

    private static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    ]

    /// The canonical upper-case name, e.g. `PERMISSION_DENIED`.
    public var description: String { Self.names[rawValue] }
}
