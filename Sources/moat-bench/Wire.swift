import NIOCore

/// Hand-written protobuf for the envelope, so the harness spends as little
/// as possible per call: a request is written straight into the outbound
/// buffer (no message object, no intermediate array) and a response is
/// scanned in place for its id, status code and reason. The bytes are the
/// same `moat.rpc.v1.Request` / `Response` any client sends
/// (`proto/moat/rpc/v1/envelope.proto`); swift-protobuf decodes them.
enum Wire {
    static func varintSize(_ value: UInt64) -> Int {
        var value = value
        var size = 1
        while value >= 0x80 {
            value >>= 7
            size += 1
        }
        return size
    }

    @inline(__always)
    static func writeVarint(_ value: UInt64, into buffer: inout ByteBuffer) {
        var value = value
        while value >= 0x80 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        buffer.writeInteger(UInt8(value))
    }

    /// Size of a length-delimited field (tag < 16) with `length` bytes.
    @inline(__always)
    static func fieldSize(_ length: Int) -> Int {
        length == 0 ? 0 : 1 + varintSize(UInt64(length)) + length
    }

    @inline(__always)
    static func writeField(_ tag: UInt8, _ bytes: [UInt8], into buffer: inout ByteBuffer) {
        guard !bytes.isEmpty else { return }
        buffer.writeInteger(tag)
        writeVarint(UInt64(bytes.count), into: &buffer)
        buffer.writeBytes(bytes)
    }
}

/// The fixed parts of a request (everything but the id), as bytes.
struct RequestTemplate: Sendable {
    var method: [UInt8]
    var tenant: [UInt8]
    var authorization: [UInt8]
    var payload: [UInt8]
    var timeoutMs: UInt32 = 0

    init(method: String, tenant: String = "", authorization: String = "", payload: [UInt8] = [], timeoutMs: UInt32 = 0) {
        self.method = Array(method.utf8)
        self.tenant = Array(tenant.utf8)
        self.authorization = Array(authorization.utf8)
        self.payload = payload
        self.timeoutMs = timeoutMs
    }

    /// Appends one frame (length prefix + `moat.rpc.v1.Request`) to `buffer`.
    @inline(__always)
    func write(id: UInt64, into buffer: inout ByteBuffer) {
        let timeoutSize = timeoutMs == 0 ? 0 : 1 + Wire.varintSize(UInt64(timeoutMs))
        let body =
            1 + Wire.varintSize(id) + Wire.fieldSize(method.count) + Wire.fieldSize(tenant.count)
            + timeoutSize + Wire.fieldSize(authorization.count) + Wire.fieldSize(payload.count)
        buffer.reserveCapacity(minimumWritableBytes: 4 + body)
        buffer.writeInteger(UInt32(body))
        buffer.writeInteger(UInt8(0x08))  // 1: id
        Wire.writeVarint(id, into: &buffer)
        Wire.writeField(0x12, method, into: &buffer)  // 2: method
        Wire.writeField(0x1A, tenant, into: &buffer)  // 3: tenant
        if timeoutMs != 0 {  // 4: timeout_ms
            buffer.writeInteger(UInt8(0x20))
            Wire.writeVarint(UInt64(timeoutMs), into: &buffer)
        }
        Wire.writeField(0x2A, authorization, into: &buffer)  // 5: authorization
        Wire.writeField(0x3A, payload, into: &buffer)  // 7: payload
    }

    /// The size of one frame of this template, prefix included (for reports).
    func frameSize(id: UInt64 = 1) -> Int {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        write(id: id, into: &buffer)
        return buffer.readableBytes
    }
}

/// What the harness needs from a `moat.rpc.v1.Response`.
struct ScannedResponse {
    var id: UInt64 = 0
    var code: UInt32 = 0
    /// Byte range of `status.reason` within the frame (only for errors).
    var reason: Range<Int>? = nil
    /// Byte range of `payload` within the frame.
    var payload: Range<Int>? = nil
}

enum ScanError: Error { case malformed }

extension UnsafeRawBufferPointer {
    @inline(__always)
    fileprivate func varint(at index: inout Int, end: Int) throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while index < end {
            let byte = self[index]
            index += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 { throw ScanError.malformed }
        }
        throw ScanError.malformed
    }

    @inline(__always)
    fileprivate func skip(wireType: UInt64, at index: inout Int, end: Int) throws {
        switch wireType {
        case 0: _ = try varint(at: &index, end: end)
        case 1: index += 8
        case 2: index += Int(try varint(at: &index, end: end))
        case 5: index += 4
        default: throw ScanError.malformed
        }
        if index > end { throw ScanError.malformed }
    }
}

extension ScannedResponse {
    /// Scans one response body (without the length prefix).
    static func scan(_ bytes: UnsafeRawBufferPointer) throws -> ScannedResponse {
        var response = ScannedResponse()
        var index = 0
        let end = bytes.count
        while index < end {
            let key = try bytes.varint(at: &index, end: end)
            switch key {
            case 0x08:
                response.id = try bytes.varint(at: &index, end: end)
            case 0x12:
                let length = Int(try bytes.varint(at: &index, end: end))
                let statusEnd = index + length
                guard statusEnd <= end else { throw ScanError.malformed }
                while index < statusEnd {
                    let statusKey = try bytes.varint(at: &index, end: statusEnd)
                    switch statusKey {
                    case 0x08:
                        response.code = UInt32(truncatingIfNeeded: try bytes.varint(at: &index, end: statusEnd))
                    case 0x1A:
                        let reasonLength = Int(try bytes.varint(at: &index, end: statusEnd))
                        guard index + reasonLength <= statusEnd else { throw ScanError.malformed }
                        response.reason = index..<(index + reasonLength)
                        index += reasonLength
                    default:
                        try bytes.skip(wireType: statusKey & 7, at: &index, end: statusEnd)
                    }
                }
            case 0x1A:
                let length = Int(try bytes.varint(at: &index, end: end))
                guard index + length <= end else { throw ScanError.malformed }
                response.payload = index..<(index + length)
                index += length
            default:
                try bytes.skip(wireType: key & 7, at: &index, end: end)
            }
        }
        return response
    }
}

/// gRPC canonical code names, as `moat.rpc.v1.Code`.
enum CodeName {
    static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    static func name(_ code: UInt32) -> String {
        code < names.count ? names[Int(code)] : "CODE_\(code)"
    }
}

/// Normalises a method name: `moat.v1.Health/Check`, `/moat.v1.Health/Check`
/// and `Health/Check` all become `/moat.v1.Health/Check`.
func normalizedMethodPath(_ method: String) -> String {
    var path = method
    if !path.hasPrefix("/") { path = "/" + path }
    let parts = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
    if parts.count == 2, !parts[0].contains(".") { path = "/moat.v1.\(parts[0])/\(parts[1])" }
    return path
}
