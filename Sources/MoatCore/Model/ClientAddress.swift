import Foundation

/// A client's IP address as the calling service passed it (`client-ip`),
/// parsed without the system resolver so any string is safe to feed it.
///
/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are the IPv4 address:
/// the same client must land in the same bucket however it is written.
public struct ClientAddress: Sendable, Hashable {
    /// 4 bytes for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    /// Whether this is an IPv4 address.
    public var isIPv4: Bool { bytes.count == 4 }

    /// Parses a dotted-quad IPv4 or an RFC 4291 IPv6 text address
    /// (optionally in brackets, optionally with a `%zone`); nil for
    /// anything else, including host names and ports.
    public init?(_ text: String) {
        var text = Substring(text.utf8.count <= 64 ? text : "")
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        if let v4 = Self.parseIPv4(text) {
            bytes = v4
        } else if let v6 = Self.parseIPv6(text) {
            let mapped = v6[0..<10].allSatisfy { $0 == 0 } && v6[10] == 0xff && v6[11] == 0xff
            bytes = mapped ? Array(v6[12..<16]) : v6
        } else {
            return nil
        }
    }

    /// The network the address is in, as text: the /24 of an IPv4 address,
    /// the /48 of an IPv6 one (the usual size of one site's allocation).
    /// The new-device notice compares these.
    public var network: String {
        isIPv4 ? Self.prefix(bytes, bits: 24) : Self.prefix(bytes, bits: 48)
    }

    /// The bucket the per-address sign-in throttle counts in: the IPv4
    /// address itself, or the /64 of an IPv6 one (one host usually holds a
    /// whole /64, so counting single IPv6 addresses would be no limit).
    public var throttleKey: String {
        isIPv4 ? Self.prefix(bytes, bits: 32) : Self.prefix(bytes, bits: 64)
    }

    static func prefix(_ bytes: [UInt8], bits: Int) -> String {
        let kept = bytes.prefix(bits / 8)
        if bytes.count == 4 {
            return kept.map(String.init).joined(separator: ".") + "/\(bits)"
        }
        var groups: [String] = []
        var index = kept.startIndex
        while index + 1 < kept.endIndex {
            groups.append(String(UInt16(kept[index]) << 8 | UInt16(kept[index + 1]), radix: 16))
            index += 2
        }
        return groups.joined(separator: ":") + "::/\(bits)"
    }

    static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var result: [UInt8] = []
        for part in parts {
            // No leading zeros: "010" is octal to some parsers and decimal to others.
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                part.count == 1 || part.first != "0", let value = UInt8(part)
            else { return nil }
            result.append(value)
        }
        return result
    }

    static func parseIPv6(_ text: Substring) -> [UInt8]? {
        guard text.count >= 2, text.count <= 45 else { return nil }
        let halves = text.split(separator: ":", omittingEmptySubsequences: false)
        guard halves.count >= 3 || text == "::" else { return nil }
        // Split at the one "::" if any.
        let pieces = text.components(separatedBy: "::")
        guard pieces.count <= 2 else { return nil }
        func groups(_ part: String, allowTrailingIPv4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            for (offset, field) in fields.enumerated() {
                if allowTrailingIPv4, offset == fields.count - 1, field.contains(".") {
                    guard let v4 = parseIPv4(field) else { return nil }
                    result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard (1...4).contains(field.count), field.allSatisfy(\.isHexDigit), let value = UInt16(field, radix: 16)
                else { return nil }
                result.append(value)
            }
            return result
        }
        var all: [UInt16]
        if pieces.count == 2 {
            guard let head = groups(pieces[0], allowTrailingIPv4: false),
                let tail = groups(pieces[1], allowTrailingIPv4: true), head.count + tail.count <= 7
            else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let every = groups(pieces[0], allowTrailingIPv4: true), every.count == 8 else { return nil }
            all = every
        }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xff)] }
    }
}
