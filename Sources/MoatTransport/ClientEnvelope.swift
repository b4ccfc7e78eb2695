public import Foundation
import MoatProto
public import MoatRPC
public import NIOCore

/// The client's side of the envelope (`moat.rpc.v1.Request` out,
/// `moat.rpc.v1.Response` in), coded by hand straight into and out of
/// `ByteBuffer`s: no message structs, no intermediate `[UInt8]` or `Data`
/// copies on the way out, and on the way in only the payload of a successful
/// answer is copied. The wire format is protobuf's, so the daemon (and any
/// protobuf decoder) reads these frames as it reads SwiftProtobuf's.
public enum ClientEnvelope {
    /// Appends one request frame (the 4-byte length, then the `Request`) to
    /// `buffer` and returns the frame's body length. When the body is over
    /// `maxFrameSize` nothing is appended and the call fails with
    /// RESOURCE_EXHAUSTED (`FRAME_TOO_LARGE`).
    @discardableResult
    public static func writeRequest(
        into buffer: inout ByteBuffer, id: UInt64, method: String, options: CallOptions, payload: Data,
        maxFrameSize: Int
    ) throws(RPCError) -> Int {
        let start = buffer.writerIndex
        buffer.writeInteger(UInt32(0))  // the length, set below
        buffer.writeVarint(1 << 3 | 0)
        buffer.writeVarint(id)
        buffer.writeStringField(2, method)
        buffer.writeStringField(3, options.tenant)
        if let timeout = options.timeout {
            let milliseconds = max(1, timeout.nanoseconds / 1_000_000)
            buffer.writeVarint(4 << 3 | 0)
            buffer.writeVarint(UInt64(UInt32(clamping: milliseconds)))
        }
        buffer.writeStringField(5, options.authorization)
        for (key, value) in options.metadata {
            let keyBytes = key.utf8.count
            let valueBytes = value.utf8.count
            let entry = 1 + varintSize(UInt64(keyBytes)) + keyBytes + 1 + varintSize(UInt64(valueBytes)) + valueBytes
            buffer.writeVarint(6 << 3 | 2)
            buffer.writeVarint(UInt64(entry))
            buffer.writeVarint(1 << 3 | 2)
            buffer.writeVarint(UInt64(keyBytes))
            buffer.writeString(key)
            buffer.writeVarint(2 << 3 | 2)
            buffer.writeVarint(UInt64(valueBytes))
            buffer.writeString(value)
        }
        if !payload.isEmpty {
            buffer.writeVarint(7 << 3 | 2)
            buffer.writeVarint(UInt64(payload.count))
            payload.withUnsafeBytes { _ = buffer.writeBytes($0) }
        }
        let length = buffer.writerIndex - start - 4
        guard length <= maxFrameSize else {
            buffer.moveWriterIndex(to: start)
            throw RPCError(
                code: .resourceExhausted,
                message: "request of \(length) bytes is over the \(maxFrameSize)-byte frame limit",
                reason: RPCError.Reason.frameTooLarge)
        }
        buffer.setInteger(UInt32(truncatingIfNeeded: length), at: start)
        return length
    }

    /// A response frame, read.
    public enum Answer: Sendable {
        /// An OK answer to call `id` with its payload.
        case ok(id: UInt64, payload: Data)
        /// A failed call `id` (0: the connection failed), with the daemon's
        /// status.
        case failed(id: UInt64, RPCError)
    }

    /// Reads one response frame's body. Only the id, the status code and the
    /// payload are looked at; a non-OK status is decoded in full (message,
    /// reason, details). Throws on a frame that is not a valid `Response`.
    public static func readResponse(_ frame: ByteBuffer) throws(ClientEnvelopeError) -> Answer {
        var reader = frame
        var id: UInt64 = 0
        var failed = false
        var payload: (index: Int, length: Int)?
        while reader.readableBytes > 0 {
            let tag = try reader.readVarintOrThrow()
            switch (tag >> 3, tag & 7) {
            case (1, 0):
                id = try reader.readVarintOrThrow()
            case (2, 2):
                var status = try reader.readLengthDelimitedOrThrow()
                while status.readableBytes > 0 {
                    let statusTag = try status.readVarintOrThrow()
                    if statusTag == 1 << 3 | 0 {
                        failed = try status.readVarintOrThrow() != 0
                    } else {
                        try status.skipField(wireType: statusTag & 7)
                    }
                }
            case (3, 2):
                let length = Int(try reader.readVarintOrThrow())
                guard length <= reader.readableBytes else { throw .malformed }
                payload = (reader.readerIndex, length)
                reader.moveReaderIndex(forwardBy: length)
            default:
                try reader.skipField(wireType: tag & 7)
            }
        }
        if failed {
            // Rare: the full status (message, reason, details) through SwiftProtobuf.
            guard let response = try? Moat_Rpc_V1_Response(serializedBytes: Data(frame.readableBytesView)) else {
                throw .malformed
            }
            return .failed(id: response.id, RPCError(response.status))
        }
        guard let payload else { return .ok(id: id, payload: Data()) }
        let data = frame.withUnsafeReadableBytes { bytes in
            Data(bytes: bytes.baseAddress! + (payload.index - frame.readerIndex), count: payload.length)
        }
        return .ok(id: id, payload: data)
    }
}

/// A response frame that is not a valid `moat.rpc.v1.Response`.
public enum ClientEnvelopeError: Error, Sendable {
    case malformed
}

@inline(__always)
func varintSize(_ value: UInt64) -> Int {
    value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
}

extension ByteBuffer {
    @inline(__always)
    mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        writeInteger(UInt8(value))
    }

    /// A proto3 string field; nothing for the empty string (the default).
    @inline(__always)
    mutating func writeStringField(_ field: UInt64, _ value: String) {
        let count = value.utf8.count
        guard count > 0 else { return }
        writeVarint(field << 3 | 2)
        writeVarint(UInt64(count))
        writeString(value)
    }

    mutating func readVarintOrThrow() throws(ClientEnvelopeError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while let byte = readInteger(as: UInt8.self) {
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            guard shift < 64 else { throw .malformed }
        }
        throw .malformed
    }

    mutating func readLengthDelimitedOrThrow() throws(ClientEnvelopeError) -> ByteBuffer {
        let length = try readVarintOrThrow()
        guard length <= UInt64(readableBytes), let slice = readSlice(length: Int(length)) else { throw .malformed }
        return slice
    }

    mutating func skipField(wireType: UInt64) throws(ClientEnvelopeError) {
        switch wireType {
        case 0: _ = try readVarintOrThrow()
        case 1: guard readSlice(length: 8) != nil else { throw .malformed }
        case 2: _ = try readLengthDelimitedOrThrow()
        case 5: guard readSlice(length: 4) != nil else { throw .malformed }
        default: throw .malformed
        }
    }
}
