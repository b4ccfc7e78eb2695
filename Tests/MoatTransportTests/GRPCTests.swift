import Foundation
import Logging
import MoatProto
import MoatRPC
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import SwiftProtobuf
import XCTest

@testable import MoatTransport

/// The gRPC mapping (metadata, timeouts, error trailers), the protocol
/// sniffer, and the per-stream handler on an EmbeddedChannel.
final class GRPCMappingTests: XCTestCase {
    func testGRPCTimeoutUnitsAndBounds() {
        XCTAssertEqual(GRPCMapping.timeoutMilliseconds("1S"), 1000)
        XCTAssertEqual(GRPCMapping.timeoutMilliseconds("100m"), 100)
        XCTAssertEqual(GRPCMapping.timeoutMilliseconds("2M"), 120_000)
        XCTAssertEqual(GRPCMapping.timeoutMilliseconds("1H"), 3_600_000)
        XCTAssertEqual(GRPCMapping.timeoutMilliseconds("1500u"), 2, "rounded up")
        XCTAssertEqual(GRPCMapping.timeoutMilliseconds("1n"), 1, "never 0, which would mean the default")
        XCTAssertEqual(GRPCMapping.timeoutMilliseconds("0m"), 1)
        XCTAssertEqual(GRPCMapping.timeoutMilliseconds("99999999H"), UInt32.max)
        for bad in ["", "S", "1", "1x", "123456789S", "-1S", "1.5S", " 1S"] {
            XCTAssertNil(GRPCMapping.timeoutMilliseconds(bad), bad)
        }
    }

    func testCallMetadataMapsEnvelopeFields() {
        let metadata = GRPCMapping.callMetadata([
            ("moat-tenant", "acme"), ("authorization", "Bearer tok.en"), ("moat-client-ip", "192.0.2.1"),
            ("user-agent", "Firefox"), ("moat-request-id", "r-1"), ("grpc-timeout", "250m"), ("x-other", "ignored"),
        ])
        XCTAssertEqual(metadata.tenant, "acme")
        XCTAssertEqual(metadata.authorization, "tok.en")
        XCTAssertEqual(metadata.metadata, ["client-ip": "192.0.2.1", "user-agent": "Firefox", "request-id": "r-1"])
        XCTAssertEqual(metadata.timeoutMilliseconds, 250)
        XCTAssertNil(metadata.problem)
        XCTAssertEqual(GRPCMapping.callMetadata([("authorization", "bearer abc")]).authorization, "abc")
        XCTAssertEqual(GRPCMapping.callMetadata([("authorization", "Basic abc")]).problem?.code, .unauthenticated)
        XCTAssertEqual(GRPCMapping.callMetadata([("grpc-timeout", "soon")]).problem?.code, .invalidArgument)
        XCTAssertEqual(GRPCMapping.callMetadata([]).timeoutMilliseconds, 0)
    }

    func testErrorTrailersCarryStatusErrorInfoAndReason() throws {
        let error = RPCError(
            code: .resourceExhausted, message: "50% é\nlocked", reason: "SIGN_IN_LOCKED",
            details: ["retry_after_seconds": "30"])
        let trailers = GRPCMapping.errorTrailers(error)
        XCTAssertEqual(trailers.map(\.0), ["grpc-status", "grpc-message", "grpc-status-details-bin", "moat-reason"])
        let values = Dictionary(uniqueKeysWithValues: trailers)
        XCTAssertEqual(values["grpc-status"], "8")
        XCTAssertEqual(values["grpc-message"], "50%25 %C3%A9%0Alocked")
        XCTAssertEqual(values["moat-reason"], "SIGN_IN_LOCKED")
        let bytes = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(values["grpc-status-details-bin"])))
        let status = try Google_Rpc_Status(serializedBytes: bytes)
        XCTAssertEqual(status.code, 8)
        XCTAssertEqual(status.message, "50% é\nlocked")
        XCTAssertEqual(status.details.count, 1)
        XCTAssertEqual(status.details[0].typeURL, "type.googleapis.com/google.rpc.ErrorInfo")
        let info = try Google_Rpc_ErrorInfo(unpackingAny: status.details[0])
        XCTAssertEqual(info.reason, "SIGN_IN_LOCKED")
        XCTAssertEqual(info.domain, "moat")
        XCTAssertEqual(info.metadata, ["retry_after_seconds": "30"])
    }

    func testSnifferTellsThePrefaceFromNativeFrames() {
        func classify(_ bytes: [UInt8]) -> ProtocolSniffer.WireProtocol? {
            ProtocolSniffer.classify(ByteBuffer(bytes: bytes))
        }
        XCTAssertEqual(classify(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)), .http2)
        XCTAssertEqual(classify(Array("PRI ".utf8)), .http2)
        XCTAssertNil(classify([]))
        XCTAssertNil(classify(Array("PR".utf8)), "a P needs four bytes to decide")
        XCTAssertEqual(classify([0, 0, 0, 12]), .native, "a native length prefix")
        XCTAssertEqual(classify([0]), .native, "decided on the first byte")
        XCTAssertEqual(classify(Array("PRX ".utf8)), .native)
    }
}

final class GRPCStreamHandlerTests: XCTestCase {
    static let echo = MethodDescriptor(service: "moat.test.Test", method: "Echo", access: .public)
    static let admin = MethodDescriptor(service: "moat.test.Test", method: "Admin", access: .admin)
    static let user = MethodDescriptor(service: "moat.test.Test", method: "User", access: .user)

    /// Echo answers on the fast path with the payload and the context it saw.
    static func makeRouter() throws -> Router {
        try Router(services: [
            TestService(methods: [
                ServerMethod(
                    descriptor: echo,
                    fastPath: { payload, context in
                        Data("\(context.tenant)|\(context.authorization)|\(context.metadata["client-ip"] ?? "")|".utf8)
                            + payload
                    },
                    handler: { payload, _ in payload }),
                ServerMethod(descriptor: admin) { _, _ in Data("admin".utf8) },
                ServerMethod(descriptor: user) { _, context in Data(context.authorization.utf8) },
            ])
        ])
    }

    private func makeChannel(admin: Bool = false, draining: Bool = false) throws -> EmbeddedChannel {
        let state = GRPCConnectionState()
        state.draining = draining
        let caller = Caller(credentials: PeerCredentials(uid: 1000, gid: 1000, pid: 1), isAdmin: admin)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            GRPCStreamHandler(
                router: try Self.makeRouter(), caller: caller, limits: TransportLimits(), connection: state, requestID: 1,
                logger: Logger(label: "test")))
        return channel
    }

    private func headers(_ path: String, contentType: String = "application/grpc", extra: [(String, String)] = [])
        -> HTTP2Frame.FramePayload
    {
        .headers(
            .init(
                headers: HPACKHeaders(
                    [(":method", "POST"), (":scheme", "http"), (":path", path), ("content-type", contentType)]
                        + extra)))
    }

    private func message(_ bytes: [UInt8], compressed: Bool = false) -> HTTP2Frame.FramePayload {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(compressed ? 1 : 0))
        buffer.writeInteger(UInt32(bytes.count))
        buffer.writeBytes(bytes)
        return .data(.init(data: .byteBuffer(buffer), endStream: true))
    }

    /// The frames written back, as (headers, endStream) or data bytes.
    private func written(_ channel: EmbeddedChannel) throws -> [HTTP2Frame.FramePayload] {
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
        return frames
    }

    private func trailersOnly(_ frames: [HTTP2Frame.FramePayload]) throws -> HPACKHeaders {
        XCTAssertEqual(frames.count, 1, "an error is one HEADERS frame")
        guard case .headers(let headers) = try XCTUnwrap(frames.first) else {
            XCTFail("not HEADERS")
            return HPACKHeaders()
        }
        XCTAssertTrue(headers.endStream)
        XCTAssertEqual(headers.headers.first(name: ":status"), "200")
        XCTAssertEqual(headers.headers.first(name: "content-type"), "application/grpc")
        return headers.headers
    }

    func testUnaryCallThroughTheRouterWithMetadata() throws {
        let channel = try makeChannel()
        try channel.writeInbound(
            headers(
                Self.echo.path,
                extra: [
                    ("moat-tenant", "acme"), ("authorization", "Bearer t0k"), ("moat-client-ip", "192.0.2.7"),
                ]))
        try channel.writeInbound(message([1, 2, 3]))
        let frames = try written(channel)
        XCTAssertEqual(frames.count, 3)
        guard case .headers(let first) = frames[0], case .data(let data) = frames[1], case .headers(let last) = frames[2]
        else { return XCTFail("expected HEADERS, DATA, trailers: \(frames)") }
        XCTAssertEqual(first.headers.first(name: ":status"), "200")
        XCTAssertFalse(first.endStream)
        guard case .byteBuffer(var body) = data.data else { return XCTFail("no bytes") }
        XCTAssertEqual(body.readInteger(as: UInt8.self), 0)
        let length = try XCTUnwrap(body.readInteger(as: UInt32.self))
        XCTAssertEqual(Int(length), body.readableBytes)
        XCTAssertEqual(body.readBytes(length: body.readableBytes), Array("acme|t0k|192.0.2.7|".utf8) + [1, 2, 3])
        XCTAssertTrue(last.endStream)
        XCTAssertEqual(last.headers.first(name: "grpc-status"), "0")
    }

    func testAdminMethodByNonAdminIsPermissionDenied() throws {
        let channel = try makeChannel(admin: false)
        try channel.writeInbound(headers(Self.admin.path))
        let trailers = try trailersOnly(try written(channel))
        XCTAssertEqual(trailers.first(name: "grpc-status"), "7")
        XCTAssertEqual(trailers.first(name: "moat-reason"), "ADMIN_REQUIRED")
    }

    func testUserMethodWithoutTokenIsUnauthenticated() throws {
        let channel = try makeChannel()
        try channel.writeInbound(headers(Self.user.path))
        let trailers = try trailersOnly(try written(channel))
        XCTAssertEqual(trailers.first(name: "grpc-status"), "16")
        XCTAssertEqual(trailers.first(name: "moat-reason"), "SESSION_REQUIRED")
    }

    func testUnknownMethodIsUnimplemented() throws {
        let channel = try makeChannel()
        try channel.writeInbound(headers("/moat.v1.Nope/Nothing"))
        let trailers = try trailersOnly(try written(channel))
        XCTAssertEqual(trailers.first(name: "grpc-status"), "12")
        XCTAssertEqual(trailers.first(name: "moat-reason"), "UNKNOWN_METHOD")
    }

    func testCompressedMessageIsUnimplemented() throws {
        let channel = try makeChannel()
        try channel.writeInbound(headers(Self.echo.path))
        try channel.writeInbound(message([1], compressed: true))
        let trailers = try trailersOnly(try written(channel))
        XCTAssertEqual(trailers.first(name: "grpc-status"), "12")
        XCTAssertEqual(trailers.first(name: "grpc-accept-encoding"), "identity")
    }

    func testMissingOrTruncatedMessageIsInvalidArgument() throws {
        for bytes: [UInt8] in [[], [0, 0, 0, 0], [0, 0, 0, 0, 9, 1]] {
            let channel = try makeChannel()
            try channel.writeInbound(headers(Self.echo.path))
            try channel.writeInbound(
                HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: bytes)), endStream: true)))
            let trailers = try trailersOnly(try written(channel))
            XCTAssertEqual(trailers.first(name: "grpc-status"), "3", "\(bytes)")
        }
    }

    func testNonGRPCContentTypeIsHTTP415() throws {
        let channel = try makeChannel()
        try channel.writeInbound(headers(Self.echo.path, contentType: "application/json"))
        let frames = try written(channel)
        guard case .headers(let headers) = try XCTUnwrap(frames.first) else { return XCTFail("not HEADERS") }
        XCTAssertEqual(headers.headers.first(name: ":status"), "415")
        XCTAssertTrue(headers.endStream)
    }

    func testDrainingConnectionRefusesNewCalls() throws {
        let channel = try makeChannel(draining: true)
        try channel.writeInbound(headers(Self.echo.path))
        let trailers = try trailersOnly(try written(channel))
        XCTAssertEqual(trailers.first(name: "grpc-status"), "14")
        XCTAssertEqual(trailers.first(name: "moat-reason"), "SHUTTING_DOWN")
    }

    func testMalformedTimeoutIsInvalidArgument() throws {
        let channel = try makeChannel()
        try channel.writeInbound(headers(Self.echo.path, extra: [("grpc-timeout", "forever")]))
        let trailers = try trailersOnly(try written(channel))
        XCTAssertEqual(trailers.first(name: "grpc-status"), "3")
    }

    func testSettingsFollowTheLimits() {
        var limits = TransportLimits()
        limits.maxInFlightPerConnection = 17
        limits.maxFrameSize = 4096
        let settings = Dictionary(
            uniqueKeysWithValues: GRPCServerPipeline.settings(limits).map { ($0.parameter, $0.value) })
        XCTAssertEqual(settings[.maxConcurrentStreams], 17)
        XCTAssertEqual(settings[.maxFrameSize], 16384, "HTTP/2's minimum")
        XCTAssertEqual(settings[.maxHeaderListSize], 4096)
        limits.maxFrameSize = 1 << 20
        let large = Dictionary(
            uniqueKeysWithValues: GRPCServerPipeline.settings(limits).map { ($0.parameter, $0.value) })
        XCTAssertEqual(large[.maxFrameSize], 1 << 20)
        XCTAssertEqual(large[.maxHeaderListSize], 16384)
    }
}

/// One socket, both protocols, on a real server.
final class GRPCSocketTests: XCTestCase {
    func testPrefaceGetsHTTP2SettingsAndNativeStillWorksOnTheSameSocket() async throws {
        let fixture = try await ServerFixture()
        let grpc = try fixture.connect()
        try grpc.send(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0])
        let header = try XCTUnwrap(try grpc.read(count: 9))
        XCTAssertEqual(header[3], 4, "the server's first frame is SETTINGS")
        XCTAssertEqual(header[4], 0, "not an ACK")

        let native = try fixture.connect()
        try native.sendRequest(request(id: 3, method: TestMethods.echo.path, payload: [0, 0, 9]))
        let response = try XCTUnwrap(try native.readResponse())
        XCTAssertEqual(response.id, 3)
        XCTAssertEqual(Array(response.payload), [0, 0, 9])
        await fixture.stop()
    }

    func testGarbageAfterThePrefaceClosesOnlyThatConnection() async throws {
        let fixture = try await ServerFixture()
        let bad = try fixture.connect()
        try bad.send(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + Array(repeating: 0xFF, count: 64))
        XCTAssertTrue(try bad.isClosedAfterReadingEverything())
        let native = try fixture.connect()
        try native.sendRequest(request(id: 1, method: TestMethods.echo.path, payload: [0, 0]))
        XCTAssertEqual(try XCTUnwrap(try native.readResponse()).status.code, .ok)
        await fixture.stop()
    }

    func testALoneFirstByteOfThePrefaceEndsAsANativeFrameTimeout() async throws {
        var limits = TransportLimits()
        limits.frameTimeout = .milliseconds(200)
        let fixture = try await ServerFixture(limits: limits)
        let socket = try fixture.connect()
        try socket.send(Array("P".utf8))
        let response = try XCTUnwrap(try socket.readResponse())
        XCTAssertEqual(response.id, 0)
        XCTAssertEqual(response.status.reason, RPCError.Reason.frameTimeout.rawValue)
        await fixture.stop()
    }

    func testASilentConnectionIsClosedAtTheIdleTimeout() async throws {
        var limits = TransportLimits()
        limits.idleTimeout = .milliseconds(300)
        let fixture = try await ServerFixture(limits: limits)
        let socket = try fixture.connect()
        let start = ContinuousClock.now
        XCTAssertTrue(try socket.isClosedAfterReadingEverything())
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(250))
        await fixture.stop()
    }

    func testShutdownSendsGoAwayAndClosesAnIdleGRPCConnection() async throws {
        let fixture = try await ServerFixture()
        let grpc = try fixture.connect()
        try grpc.send(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0])
        _ = try grpc.read(count: 9)
        await fixture.stop()
        XCTAssertTrue(try grpc.isClosedAfterReadingEverything())
    }
}

extension RawSocket {
    /// Reads (and drops) whatever the server still sends, such as SETTINGS
    /// and GOAWAY; true when it then closes the connection, false if it
    /// stays open past the receive timeout.
    func isClosedAfterReadingEverything() throws -> Bool {
        while true {
            do {
                guard try read(count: 1) != nil else { return true }
            } catch let error as POSIXError where error.code == .ECONNRESET {
                return true
            } catch let error as POSIXError where error.code == .EAGAIN || error.code == .EWOULDBLOCK {
                return false
            }
        }
    }
}
