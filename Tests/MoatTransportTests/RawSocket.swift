import Foundation
import MoatProto

#if canImport(Glibc)
import Glibc
#endif

/// A blocking Unix-socket client that speaks raw bytes, so tests can send
/// exactly what a buggy or hostile client would.
final class RawSocket {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() where index < raw.count - 1 { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            offset += written
        }
    }

    func sendFrame(_ body: [UInt8]) throws {
        let length = UInt32(body.count).bigEndian
        try send(withUnsafeBytes(of: length) { Array($0) } + body)
    }

    func sendRequest(_ request: Moat_Rpc_V1_Request) throws {
        try sendFrame(try request.serializedBytes())
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Reads exactly `count` bytes; nil at end of stream.
    func read(count: Int) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let received = buffer[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received == 0 { return nil }
            guard received > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            offset += received
        }
        return buffer
    }

    /// Reads one response frame; nil at end of stream.
    func readResponse() throws -> Moat_Rpc_V1_Response? {
        guard let header = try read(count: 4) else { return nil }
        let length = Int(UInt32(header[0]) << 24 | UInt32(header[1]) << 16 | UInt32(header[2]) << 8 | UInt32(header[3]))
        guard let body = try read(count: length) else { return nil }
        return try Moat_Rpc_V1_Response(serializedBytes: body)
    }

    /// True when the server closed the connection: end of stream, or a reset
    /// (a close with our unread bytes still queued on its side).
    func isClosedByPeer() throws -> Bool {
        do {
            return try read(count: 1) == nil
        } catch let error as POSIXError where error.code == .ECONNRESET {
            return true
        }
    }
}

func request(id: UInt64, method: String, payload: [UInt8] = [], timeoutMs: UInt32 = 0, authorization: String = "")
    -> Moat_Rpc_V1_Request
{
    var request = Moat_Rpc_V1_Request()
    request.id = id
    request.method = method
    request.payload = Data(payload)
    request.timeoutMs = timeoutMs
    request.authorization = authorization
    return request
}
