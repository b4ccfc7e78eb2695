import Foundation

/// An invariant a fuzz input broke. The libFuzzer harnesses abort on one
/// (a finding); the corpus replay test fails on one.
public struct FuzzViolation: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for the crash report.
    public let description: String

    /// Creates a violation.
    public init(_ description: String) { self.description = description }
}

/// A tiny deterministic generator (SplitMix64), so a fuzz input always
/// replays to the same chunking and choices.
struct FuzzRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }

    mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(next() % UInt64(bound)) }
}

/// Reads a fuzz input front to back: choices first, the rest as payload.
struct FuzzInput {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    /// Up to `limit` bytes, length-prefixed by one byte.
    mutating func chunk(limit: Int = 255) -> [UInt8] {
        let length = min(Int(byte()), limit, bytes.count - min(offset, bytes.count))
        defer { offset += length }
        return Array(bytes[min(offset, bytes.count)..<min(offset + length, bytes.count)])
    }

    /// Bytes not read yet.
    var remaining: Int { max(0, bytes.count - offset) }

    var rest: [UInt8] { offset < bytes.count ? Array(bytes[offset...]) : [] }
}

/// What every libFuzzer entry point does with its input.
public enum FuzzHarness {
    /// Runs `check` on libFuzzer's bytes; on a violation writes it to
    /// stderr and aborts, which is how libFuzzer learns of a finding (and
    /// keeps the input). Always returns 0 otherwise, as libFuzzer expects.
    public static func run(
        _ data: UnsafePointer<UInt8>?, _ size: Int, _ check: ([UInt8]) throws(FuzzViolation) -> Void
    ) -> Int32 {
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        do {
            try check(bytes)
        } catch {
            FileHandle.standardError.write(Data("fuzz violation: \(error.description)\n".utf8))
            abort()
        }
        return 0
    }
}
