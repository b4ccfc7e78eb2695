import CMoatClient
import Foundation
import Logging
import MoatClient
import MoatCrypto
import MoatProto
import MoatServer
import MoatTransport
import SwiftProtobuf
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// The tests are synchronous XCTest methods: the C client blocks in poll(),
// so it runs on the test's own thread, never on a Swift concurrency thread
// the in-process daemon needs. Async daemon work is bridged with `blocking`.

/// Runs async work to completion from synchronous code.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

// MARK: - The daemon

/// A moatd in this process (cheap hashing, temporary directory) with a
/// capture service registered next to Moat's own, and a Swift client.
final class LiveDaemon: @unchecked Sendable {
    let directory: String
    let capture = Capture()
    let swift: MoatClient
    private var daemon: MoatDaemon?
    private var task: Task<Void, any Error>?

    var socketPath: String { (directory as NSString).appendingPathComponent("moat.sock") }

    init(limits: ((inout TransportLimits) -> Void)? = nil) throws {
        directory = "/tmp/moat-c-" + UUID().uuidString.prefix(8).lowercased()
        self.limits = limits
        swift = MoatClient(socketPath: (directory as NSString).appendingPathComponent("moat.sock"))
        try start()
    }

    private let limits: ((inout TransportLimits) -> Void)?

    /// Opens the daemon on the directory (again, after `stopDaemon`).
    func start() throws {
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory
        configuration.hashing.parameters = Argon2Parameters(memoryKiB: 64, iterations: 1, parallelism: 1)
        limits?(&configuration.limits)
        var logger = Logger(label: "c-client-test")
        logger.logLevel = .warning
        let services: [any RPCService] = [CaptureService(capture: capture)]
        let daemon = try blocking { [configuration, logger] in
            try await MoatDaemon.open(configuration: configuration, logger: logger, extraServices: services)
        }
        try blocking { try await daemon.server.start() }
        self.daemon = daemon
        task = Task { try await daemon.run() }
    }

    /// Stops the daemon as SIGTERM would, and waits until it is gone.
    func stopDaemon() throws {
        guard let daemon, let task else { return }
        self.daemon = nil
        self.task = nil
        try blocking {
            await daemon.shutdown()
            try await task.value
        }
    }

    func stop() {
        let swift = self.swift
        try? blocking { await swift.close() }
        try? stopDaemon()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Creates a tenant and its owner through the Swift client (the test
    /// process is an administrator: root, or the daemon's own uid).
    @discardableResult
    func createTenant(_ slug: String, owner: String, password: String) throws -> Moat_V1_CreateTenantResponse {
        let swift = self.swift
        return try blocking {
            try await swift.tenants.create(
                .with {
                    $0.slug = slug
                    $0.name = "Tenant \(slug)"
                    $0.ownerEmail = owner
                    $0.ownerPassword = password
                })
        }
    }
}

// MARK: - Capture: what the daemon decoded

/// Records, for each call to a `/moat.test.Capture/...` method, the payload
/// bytes the daemon received and the message its SwiftProtobuf decoding
/// produced (the same `ServerMethod.unary` path every Moat method uses),
/// and answers with that decoded message re-serialized.
final class Capture: @unchecked Sendable {
    struct Record {
        var path: String
        var payload: [UInt8]
        var decoded: any SwiftProtobuf.Message
    }

    private let lock = NSLock()
    private var records: [Record] = []

    func add(_ record: Record) { lock.withLock { records.append(record) } }

    func take() -> [Record] {
        lock.withLock {
            defer { records.removeAll() }
            return records
        }
    }
}

/// The capture methods, one per request type under test, each with the
/// access level of the real method it stands for.
struct CaptureService: RPCService {
    static let service = "moat.test.Capture"
    let capture: Capture

    static func descriptor(_ name: String, _ access: MethodAccess = .public) -> MethodDescriptor {
        MethodDescriptor(service: service, method: name, access: access)
    }

    var methods: [ServerMethod] {
        [
            method(Moat_V1_CheckRequest.self, "HealthCheck"),
            method(Moat_V1_CreateTenantRequest.self, "TenantsCreate", .admin),
            method(Moat_V1_UpdatePolicyRequest.self, "TenantsUpdatePolicy", .admin),
            method(Moat_V1_SignInRequest.self, "UsersSignIn"),
            method(Moat_V1_ValidateRequest.self, "SessionsValidate"),
        ]
    }

    private func method<M: SwiftProtobuf.Message>(_: M.Type, _ name: String, _ access: MethodAccess = .public)
        -> ServerMethod
    {
        let capture = self.capture
        let descriptor = Self.descriptor(name, access)
        let decoding = ServerMethod.unary(descriptor) { (request: M, _) async throws -> M in request }
        return ServerMethod(descriptor: descriptor) { payload, context in
            // Decode exactly as the daemon decodes every request.
            let decoded = try decodeRequest(M.self, from: payload, method: descriptor)
            capture.add(.init(path: descriptor.path, payload: Array(payload), decoded: decoded))
            return try await decoding.handler(payload, context)
        }
    }
}

// MARK: - The C client from Swift

extension moat_status {
    static func empty() -> moat_status { moat_status() }
    var reasonText: String { Self.text(reason) }
    var messageText: String { Self.text(message) }
    var isLocal: Bool { local != 0 }
    var codeName: String { String(cString: moat_code_name(code)) }

    private static func text<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }

    var summary: String { "\(codeName) (\(reasonText))\(isLocal ? " [local]" : ""): \(messageText)" }
}

struct CStatusError: Error, CustomStringConvertible {
    let status: moat_status
    var description: String { status.summary }
}

/// One C client (one connection). Used from one thread at a time.
final class CClient: @unchecked Sendable {
    let handle: OpaquePointer

    init(path: String, timeoutMs: Int32 = 5000) throws {
        var status = moat_status()
        guard let handle = moat_client_connect(path, timeoutMs, &status) else { throw CStatusError(status: status) }
        self.handle = handle
    }

    deinit { moat_client_close(handle) }

    /// Calls a method with a protobuf-c request and reads the decoded answer
    /// (freed after `read`). Throws the status on failure.
    func call<Response, R>(
        _ method: String, tenant: String? = nil, authorization: String? = nil,
        request: UnsafePointer<ProtobufCMessage>?, response: String, as: Response.Type,
        read: (Response) throws -> R
    ) throws -> R {
        var status = moat_status()
        var out: UnsafeMutablePointer<ProtobufCMessage>?
        let descriptor = try XCTUnwrap(moat_message_descriptor(response), "no descriptor \(response)")
        let code = moat_call(handle, method, tenant, authorization, request, descriptor, &out, &status)
        guard code == Int32(MOAT_OK), let out else {
            XCTAssertNil(out, "a failed call returns no message")
            throw CStatusError(status: status)
        }
        defer { moat_message_free(out) }
        return try read(UnsafeRawPointer(out).assumingMemoryBound(to: Response.self).pointee)
    }

    /// Calls a method expecting a failure: returns the status (OK included).
    func status(
        _ method: String, tenant: String? = nil, authorization: String? = nil,
        request: UnsafePointer<ProtobufCMessage>?, response: String
    ) -> moat_status {
        var status = moat_status()
        var out: UnsafeMutablePointer<ProtobufCMessage>?
        let code = moat_call(handle, method, tenant, authorization, request, moat_message_descriptor(response), &out, &status)
        XCTAssertEqual(code, status.code)
        if code != Int32(MOAT_OK) { XCTAssertNil(out) }
        moat_message_free(out)
        return status
    }

    /// moat_call_raw: bytes in, bytes out.
    func raw(_ method: String, tenant: String? = nil, authorization: String? = nil, payload: [UInt8])
        -> (status: moat_status, payload: [UInt8])
    {
        var status = moat_status()
        var out: UnsafeMutablePointer<UInt8>?
        var count = 0
        let code = payload.withUnsafeBufferPointer { buffer in
            moat_call_raw(handle, method, tenant, authorization, buffer.baseAddress, buffer.count, &out, &count, &status)
        }
        XCTAssertEqual(code, status.code)
        defer { moat_free(out) }
        guard let out, count > 0 else { return (status, []) }
        return (status, Array(UnsafeBufferPointer(start: out, count: count)))
    }

    func setMaxFrameBytes(_ bytes: Int) { moat_client_set_max_frame_bytes(handle, bytes) }
}

/// Owns the C strings and messages a test builds; frees them at the end.
final class CArena {
    private var frees: [() -> Void] = []

    func string(_ value: String) -> UnsafeMutablePointer<CChar> {
        let pointer = strdup(value)!
        frees.append { free(pointer) }
        return pointer
    }

    /// A zeroed message initialized by its generated `..._init` function.
    func message<T>(_ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: 1)
        UnsafeMutableRawPointer(pointer).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<T>.size)
        initialize(pointer)
        frees.append { pointer.deallocate() }
        return pointer
    }

    deinit { frees.forEach { $0() } }
}

/// The `ProtobufCMessage` header of a generated message.
func base<T>(_ message: UnsafeMutablePointer<T>) -> UnsafePointer<ProtobufCMessage> {
    UnsafeRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
}

/// Serializes a protobuf-c message with libprotobuf-c.
func protobufCBytes<T>(_ message: UnsafeMutablePointer<T>) -> [UInt8] {
    let size = protobuf_c_message_get_packed_size(base(message))
    var bytes = [UInt8](repeating: 0, count: size)
    let written = bytes.withUnsafeMutableBufferPointer { protobuf_c_message_pack(base(message), $0.baseAddress) }
    XCTAssertEqual(written, size)
    return bytes
}

func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}

// MARK: - A fake daemon for failures a real one does not produce

/// Listens on a Unix socket; for one connection, reads one request frame
/// and then behaves as told.
final class FakeServer: @unchecked Sendable {
    enum Behavior {
        /// Never answers (until the client closes).
        case silent
        /// Closes the connection.
        case close
        /// Sends these bytes, then waits for the client to close.
        case send([UInt8])
        /// Sends these bytes and closes.
        case sendAndClose([UInt8])
    }

    let path: String
    private let listener: Int32
    private let thread: Thread
    private let done = DispatchSemaphore(value: 0)

    init(_ behavior: Behavior) throws {
        let path = "/tmp/moat-c-fake-" + UUID().uuidString.prefix(8).lowercased() + ".sock"
        self.path = path
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
        listener = fd
        let done = self.done
        thread = Thread {
            defer { done.signal() }
            let connection = accept(fd, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            guard FakeServer.readFrame(connection) else { return }
            switch behavior {
            case .silent:
                _ = FakeServer.readFrame(connection)
            case .close:
                return
            case .send(let bytes):
                _ = bytes.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                _ = FakeServer.readFrame(connection)
            case .sendAndClose(let bytes):
                _ = bytes.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
        thread.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        done.wait()
        close(listener)
        unlink(path)
    }

    private static func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = buffer[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            offset += n
        }
        return buffer
    }

    private static func readFrame(_ fd: Int32) -> Bool {
        guard let header = readExactly(fd, 4) else { return false }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        return readExactly(fd, length) != nil
    }
}

/// A frame: 4-byte big-endian length, then the body.
func frame(_ body: [UInt8]) -> [UInt8] {
    let n = UInt32(body.count)
    return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body
}
