/// A point in time: milliseconds since the Unix epoch.
public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var milliseconds: Int64

    /// Creates a timestamp from milliseconds since the epoch.
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// Creates a timestamp from whole seconds since the epoch.
    public init(seconds: Int64) { self.milliseconds = seconds.multipliedReportingOverflow(by: 1000).partialValue }

    /// Whole seconds since the epoch (rounded down).
    public var seconds: Int64 { milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000 }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// This time plus a number of seconds (saturating).
    public func adding(seconds: Int64) -> Timestamp {
        let (delta, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return Timestamp(milliseconds: seconds < 0 ? .min : .max) }
        let (sum, sumOverflow) = milliseconds.addingReportingOverflow(delta)
        return sumOverflow ? Timestamp(milliseconds: delta < 0 ? .min : .max) : Timestamp(milliseconds: sum)
    }

    public var description: String { "\(milliseconds)ms" }
}

/// The wall clock the domain reads. Injected, so tests move time by hand.
public protocol WallClock: Sendable {
    /// The current time.
    func now() -> Timestamp
}

/// The system's real-time clock.
public struct SystemWallClock: WallClock {
    public init() {}

    public func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A typed identifier: a prefix and 26 lowercase base32 characters (130
/// bits of which 128 are random), e.g. `us_k5v3...`. Random, never
/// sequential, so ids reveal neither counts nor order.
public protocol PrefixedID: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The prefix including the underscore, e.g. `us_`.
    static var prefix: String { get }
    /// The full identifier.
    var rawValue: String { get }
    /// Wraps a value that is known to be well formed.
    init(unchecked rawValue: String)
}

extension PrefixedID {
    /// Parses an identifier, or nil if it is not of this type's form.
    public init?(_ text: String) {
        guard Self.isWellFormed(text) else { return nil }
        self.init(unchecked: text)
    }

    /// A fresh random identifier.
    public static func random() -> Self {
        Self(unchecked: prefix + RandomIdentifier.make())
    }

    /// Whether the text has the prefix and 26 base32 characters.
    public static func isWellFormed(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        let prefixBytes = Array(prefix.utf8)
        guard utf8.count == prefixBytes.count + 26, utf8.starts(with: prefixBytes) else { return false }
        return utf8[prefixBytes.count...].allSatisfy { (0x61...0x7A).contains($0) || (0x32...0x37).contains($0) }
    }

    public var description: String { rawValue }
}

/// Random identifier bodies.
public enum RandomIdentifier {
    /// 26 lowercase base32 characters from 16 random bytes.
    public static func make() -> String {
        let bytes = SecureBytes.random(16)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)
        var output: [UInt8] = []
        output.reserveCapacity(26)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return String(decoding: output, as: UTF8.self)
    }
}

/// A tenant's id, `tn_...`.
public struct TenantID: PrefixedID {
    public static let prefix = "tn_"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A user's id, `us_...`.
public struct UserID: PrefixedID {
    public static let prefix = "us_"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}

/// A session's id, `se_...` (not its token).
public struct SessionID: PrefixedID {
    public static let prefix = "se_"
    public let rawValue: String
    public init(unchecked rawValue: String) { self.rawValue = rawValue }
}
