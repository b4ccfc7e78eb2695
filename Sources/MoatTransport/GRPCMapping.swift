public import Foundation
public import MoatRPC
import MoatProto
import SwiftProtobuf

/// How Moat's envelope and status travel over standard gRPC: metadata keys,
/// `grpc-timeout`, and the trailers of a failed call (`grpc-status`,
/// percent-encoded `grpc-message`, `grpc-status-details-bin` holding a
/// `google.rpc.Status` with one `google.rpc.ErrorInfo`, and `moat-reason`).
///
/// Pure functions: the HTTP/2 handlers call them, tests call them directly.
public enum GRPCMapping {
    /// Metadata key of the tenant (slug or id).
    public static let tenantKey = "moat-tenant"
    /// Metadata key of the client's IP address (envelope `client-ip`).
    public static let clientIPKey = "moat-client-ip"
    /// Metadata key of the caller's request id (envelope `request-id`).
    public static let requestIDKey = "moat-request-id"
    /// Trailer carrying the stable reason for clients that read plain trailers.
    public static let reasonKey = "moat-reason"
    /// `google.rpc.ErrorInfo.domain` of Moat's errors.
    public static let errorDomain = "moat"

    /// The envelope fields read from a call's metadata.
    public struct CallMetadata: Sendable {
        /// `moat-tenant`.
        public var tenant = ""
        /// The token of `authorization: Bearer <token>`; empty when absent.
        public var authorization = ""
        /// Envelope metadata: `client-ip`, `user-agent`, `request-id`.
        public var metadata: [String: String] = [:]
        /// `grpc-timeout` in milliseconds (0: none given, the default applies).
        public var timeoutMilliseconds: UInt32 = 0
        /// Why the metadata is unusable (a malformed `grpc-timeout` or
        /// `authorization`), if it is.
        public var problem: RPCError?

        /// Empty metadata.
        public init() {}
    }

    /// Reads Moat's envelope fields from the request headers (names
    /// lowercase, as HTTP/2 requires).
    public static func callMetadata(_ headers: some Sequence<(String, String)>) -> CallMetadata {
        var result = CallMetadata()
        for (name, value) in headers {
            switch name {
            case tenantKey:
                result.tenant = value
            case "authorization":
                // "Bearer <token>"; the scheme is case-insensitive (RFC 6750).
                let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
                if parts.count == 2, parts[0].lowercased() == "bearer" {
                    result.authorization = parts[1].trimmingCharacters(in: .whitespaces)
                } else {
                    result.problem = RPCError(
                        code: .unauthenticated, message: "authorization metadata must be \"Bearer <session token>\"",
                        reason: RPCError.Reason.sessionRequired)
                }
            case clientIPKey:
                result.metadata["client-ip"] = value
            case "user-agent":
                result.metadata["user-agent"] = value
            case requestIDKey:
                result.metadata["request-id"] = value
            case "grpc-timeout":
                if let milliseconds = timeoutMilliseconds(value) {
                    result.timeoutMilliseconds = milliseconds
                } else {
                    result.problem = RPCError(
                        code: .invalidArgument, message: "grpc-timeout is not a valid timeout",
                        reason: RPCError.Reason.invalidTimeout)
                }
            default:
                break
            }
        }
        return result
    }

    /// `grpc-timeout` (1 to 8 digits and a unit H, M, S, m, u, n) in whole
    /// milliseconds, at least 1 and at most `UInt32.max`; nil when malformed.
    public static func timeoutMilliseconds(_ value: String) -> UInt32? {
        let bytes = Array(value.utf8)
        guard (2...9).contains(bytes.count), let unit = bytes.last else { return nil }
        var amount: UInt64 = 0
        for digit in bytes.dropLast() {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
            amount = amount * 10 + UInt64(digit - UInt8(ascii: "0"))
        }
        let nanosecondsPerUnit: UInt64
        switch unit {
        case UInt8(ascii: "H"): nanosecondsPerUnit = 3_600_000_000_000
        case UInt8(ascii: "M"): nanosecondsPerUnit = 60_000_000_000
        case UInt8(ascii: "S"): nanosecondsPerUnit = 1_000_000_000
        case UInt8(ascii: "m"): nanosecondsPerUnit = 1_000_000
        case UInt8(ascii: "u"): nanosecondsPerUnit = 1_000
        case UInt8(ascii: "n"): nanosecondsPerUnit = 1
        default: return nil
        }
        // 99999999H does not fit in nanoseconds: saturate (the deadline is
        // clamped to the maximum anyway).
        let (nanoseconds, overflow) = amount.multipliedReportingOverflow(by: nanosecondsPerUnit)
        if overflow { return UInt32.max }
        // Round up: a timeout below a millisecond still gets one, never 0
        // (which would mean "the default").
        let milliseconds = nanoseconds / 1_000_000 + (nanoseconds % 1_000_000 == 0 ? 0 : 1)
        return UInt32(clamping: max(1, milliseconds))
    }

    /// The trailers of a failed call, in order: `grpc-status`,
    /// `grpc-message`, `grpc-status-details-bin`, `moat-reason`.
    public static func errorTrailers(_ error: RPCError) -> [(String, String)] {
        var trailers: [(String, String)] = [("grpc-status", String(error.code.rawValue))]
        if !error.message.isEmpty {
            trailers.append(("grpc-message", percentEncoded(error.message)))
        }
        if let details = try? statusDetails(error) {
            trailers.append(("grpc-status-details-bin", details.base64EncodedString()))
        }
        if !error.reason.isEmpty {
            trailers.append((reasonKey, error.reason))
        }
        return trailers
    }

    /// The serialized `google.rpc.Status` of an error: code, message, and one
    /// `google.rpc.ErrorInfo { reason, domain: "moat", metadata: details }`.
    public static func statusDetails(_ error: RPCError) throws -> Data {
        var info = Google_Rpc_ErrorInfo()
        info.reason = error.reason
        info.domain = errorDomain
        info.metadata = error.details
        var status = Google_Rpc_Status()
        status.code = Int32(error.code.rawValue)
        status.message = error.message
        status.details = [try Google_Protobuf_Any(message: info)]
        return try status.serializedBytes()
    }

    /// `grpc-message` encoding: UTF-8, with bytes outside printable ASCII and
    /// `%` written as `%XX`.
    public static func percentEncoded(_ message: String) -> String {
        var out = ""
        out.reserveCapacity(message.utf8.count)
        let hex = Array("0123456789ABCDEF")
        for byte in message.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                out.append(Character(Unicode.Scalar(byte)))
            } else {
                out.append("%")
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return out
    }
}
