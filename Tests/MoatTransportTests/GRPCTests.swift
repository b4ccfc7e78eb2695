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

    /// The connection handler alone, fed one stream's frames (stream 1) as
    /// the HTTP/2 handler would pass them on.
    private func makeChannel(admin: Bool = false, draining: Bool = false, reflection: GRPCReflection? = nil) throws
        -> StreamChannel
    {
        let caller = Caller(credentials: PeerCredentials(uid: 1000, gid: 1000, pid: 1), isAdmin: admin)
        let shared = GRPCConnectionShared(
            router: try Self.makeRouter(), reflection: reflection, caller: caller, limits: TransportLimits(),
            logger: Logger(label: "test"))
        shared.draining = draining
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(GRPCConnectionHandler(shared: shared))
        return StreamChannel(channel: channel)
    }

    /// Stream 1 of an EmbeddedChannel: payloads in, payloads out (window
    /// updates aside, which ``testRequestBytesAreGivenBackToTheWindows`` checks).
    struct StreamChannel {
        let channel: EmbeddedChannel

        func writeInbound(_ payload: HTTP2Frame.FramePayload, stream: HTTP2StreamID = 1) throws {
            try channel.writeInbound(HTTP2Frame(streamID: stream, payload: payload))
            channel.pipeline.fireChannelReadComplete()
        }

        func readOutbound() throws -> HTTP2Frame? { try channel.readOutbound(as: HTTP2Frame.self) }
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

    /// The frames written back on stream 1, window updates aside.
    private func written(_ channel: StreamChannel) throws -> [HTTP2Frame.FramePayload] {
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound() {
            if case .windowUpdate = frame.payload { continue }
            XCTAssertEqual(frame.streamID, 1)
            frames.append(frame.payload)
        }
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

    // MARK: Server reflection

    private func reflectionMessages(_ requests: [Grpc_Reflection_V1_ServerReflectionRequest]) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        for request in requests {
            let bytes: [UInt8] = try request.serializedBytes()
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt32(bytes.count))
            buffer.writeBytes(bytes)
        }
        return buffer
    }

    private func reflectionRequest(_ set: (inout Grpc_Reflection_V1_ServerReflectionRequest) -> Void)
        -> Grpc_Reflection_V1_ServerReflectionRequest
    {
        var request = Grpc_Reflection_V1_ServerReflectionRequest()
        set(&request)
        return request
    }

    /// The response messages of a reflection stream and its final trailers.
    private func reflectionAnswers(_ frames: [HTTP2Frame.FramePayload]) throws -> (
        [Grpc_Reflection_V1_ServerReflectionResponse], HPACKHeaders
    ) {
        guard case .headers(let first) = try XCTUnwrap(frames.first), case .headers(let last) = try XCTUnwrap(frames.last)
        else {
            XCTFail("expected HEADERS ... trailers: \(frames)")
            return ([], HPACKHeaders())
        }
        XCTAssertEqual(first.headers.first(name: ":status"), "200")
        XCTAssertFalse(first.endStream)
        XCTAssertTrue(last.endStream)
        XCTAssertNil(last.headers.first(name: ":status"), "trailers after a response carry no :status")
        var bytes = ByteBuffer()
        for frame in frames.dropFirst().dropLast() {
            guard case .data(let data) = frame, case .byteBuffer(var chunk) = data.data else {
                XCTFail("expected DATA: \(frame)")
                continue
            }
            bytes.writeBuffer(&chunk)
        }
        var answers: [Grpc_Reflection_V1_ServerReflectionResponse] = []
        while bytes.readableBytes > 0 {
            XCTAssertEqual(bytes.readInteger(as: UInt8.self), 0)
            let length = try XCTUnwrap(bytes.readInteger(as: UInt32.self))
            let message = try XCTUnwrap(bytes.readBytes(length: Int(length)))
            answers.append(try Grpc_Reflection_V1_ServerReflectionResponse(serializedBytes: message))
        }
        return (answers, last.headers)
    }

    private func fileNames(_ response: Grpc_Reflection_V1_ServerReflectionResponse) throws -> [String] {
        try response.fileDescriptorResponse.fileDescriptorProto.map {
            try Google_Protobuf_FileDescriptorProto(serializedBytes: $0).name
        }
    }

    func testReflectionAnswersEveryRequestOfAStreamInOrder() throws {
        let reflection = try GRPCReflection(serving: try Self.makeRouter())
        for path in GRPCReflection.paths.sorted() {
            let channel = try makeChannel(reflection: reflection)
            try channel.writeInbound(headers(path))
            let requests = [
                reflectionRequest { $0.listServices = "" },
                reflectionRequest { $0.fileByFilename = "google/rpc/status.proto" },
                reflectionRequest { $0.fileByFilename = "google/rpc/status.proto" },
                reflectionRequest { $0.fileContainingSymbol = "moat.v1.Sessions.Validate" },
                reflectionRequest { $0.fileContainingSymbol = "no.such.Symbol" },
                reflectionRequest { $0.host = "localhost" },
            ]
            // The messages split across DATA frames at an awkward place.
            var all = try reflectionMessages(requests)
            let head = try XCTUnwrap(all.readSlice(length: 3))
            try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(head))))
            XCTAssertTrue(try written(channel).isEmpty, "nothing answered before a whole message")
            try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(all))))
            // END_STREAM on an empty DATA frame, as grpcio sends it.
            try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
            let (answers, trailers) = try reflectionAnswers(try written(channel))
            XCTAssertEqual(trailers.first(name: "grpc-status"), "0", path)
            XCTAssertEqual(answers.count, requests.count)
            XCTAssertEqual(answers.map(\.originalRequest), requests)
            XCTAssertEqual(
                answers[0].listServicesResponse.service.map(\.name),
                ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "moat.test.Test"])
            XCTAssertEqual(
                try fileNames(answers[1]), ["google/rpc/status.proto", "google/protobuf/any.proto"],
                "the file, then its imports")
            XCTAssertEqual(try fileNames(answers[2]), ["google/rpc/status.proto"], "imports are sent once per stream")
            XCTAssertEqual(try fileNames(answers[3]).first, "moat/v1/sessions.proto")
            XCTAssertEqual(answers[4].errorResponse.errorCode, Int32(Code.notFound.rawValue))
            XCTAssertEqual(answers[5].errorResponse.errorCode, Int32(Code.invalidArgument.rawValue))
            XCTAssertEqual(answers[5].validHost, "localhost")
        }
    }

    func testReflectionStreamEndingAtOnceIsOK() throws {
        let channel = try makeChannel(reflection: try GRPCReflection(serving: try Self.makeRouter()))
        try channel.writeInbound(
            HTTP2Frame.FramePayload.headers(
                .init(
                    headers: HPACKHeaders([
                        (":method", "POST"), (":path", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
                        ("content-type", "application/grpc"),
                    ]), endStream: true)))
        XCTAssertEqual(try trailersOnly(try written(channel)).first(name: "grpc-status"), "0")
    }

    func testReflectionRefusesUndecodableAndTruncatedMessages() throws {
        let reflection = try GRPCReflection(serving: try Self.makeRouter())
        let path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        let channel = try makeChannel(reflection: reflection)
        try channel.writeInbound(headers(path))
        try channel.writeInbound(message([0xFF, 0xFF, 0xFF]))
        let trailers = try trailersOnly(try written(channel))
        XCTAssertEqual(trailers.first(name: "grpc-status"), "3")
        XCTAssertEqual(trailers.first(name: "moat-reason"), "INVALID_PAYLOAD")

        // One answered request, then the stream ends inside a message.
        let truncated = try makeChannel(reflection: reflection)
        try truncated.writeInbound(headers(path))
        var bytes = try reflectionMessages([reflectionRequest { $0.listServices = "" }])
        bytes.writeBytes([0, 0, 0, 0, 9, 1])
        try truncated.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(bytes), endStream: true)))
        let (answers, last) = try reflectionAnswers(try written(truncated))
        XCTAssertEqual(answers.count, 1)
        XCTAssertEqual(last.first(name: "grpc-status"), "3")
        XCTAssertEqual(last.first(name: "moat-reason"), "MALFORMED_FRAME")
    }

    func testReflectionPathWithoutReflectionIsUnimplemented() throws {
        let channel = try makeChannel(reflection: nil)
        try channel.writeInbound(headers("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"))
        XCTAssertEqual(try trailersOnly(try written(channel)).first(name: "grpc-status"), "12")
    }

    func testRequestBytesAreGivenBackToTheWindows() throws {
        let channel = try makeChannel()
        try channel.writeInbound(headers(Self.echo.path))
        // The first frame raises the connection window to a full message.
        let raised = try XCTUnwrap(try channel.readOutbound())
        XCTAssertEqual(raised.streamID, .rootStream)
        guard case .windowUpdate(let increment) = raised.payload else { return XCTFail("\(raised)") }
        XCTAssertEqual(increment, TransportLimits().maxFrameSize + 5 - 65_535)
        XCTAssertNil(try channel.readOutbound())
        // A 100 KB message in 20 KB DATA frames: the stream window comes
        // back each time half of it is used; the connection window at half
        // of its size.
        var body = ByteBuffer()
        body.writeInteger(UInt8(0))
        body.writeInteger(UInt32(100_000))
        body.writeRepeatingByte(7, count: 100_000)
        var updates: [(HTTP2StreamID, Int)] = []
        while body.readableBytes > 0 {
            let chunk = try XCTUnwrap(body.readSlice(length: min(20_000, body.readableBytes)))
            try channel.writeInbound(.data(.init(data: .byteBuffer(chunk), endStream: body.readableBytes == 0)))
            while let frame = try channel.readOutbound() {
                if case .windowUpdate(let increment) = frame.payload { updates.append((frame.streamID, increment)) }
            }
        }
        XCTAssertEqual(updates.map(\.0), [1, 1], "none after END_STREAM")
        XCTAssertEqual(updates.map(\.1), [40_000, 40_000])
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

/// The descriptor set committed by scripts/generate, indexed for reflection.
final class GRPCReflectionTests: XCTestCase {
    /// Every service generated from proto/, as the router serves them.
    static let generated: [[MethodDescriptor]] = [
        Grpc_Health_V1_Health.Method.all, Moat_V1_Events.Method.all, Moat_V1_Health.Method.all,
        Moat_V1_Operations.Method.all, Moat_V1_Sessions.Method.all, Moat_V1_Teams.Method.all,
        Moat_V1_Tenants.Method.all, Moat_V1_TwoFactor.Method.all, Moat_V1_Users.Method.all,
    ]

    private func answer(_ reflection: GRPCReflection, sent: inout Set<String>, _ set: (inout Grpc_Reflection_V1_ServerReflectionRequest) -> Void)
        -> Grpc_Reflection_V1_ServerReflectionResponse
    {
        var request = Grpc_Reflection_V1_ServerReflectionRequest()
        set(&request)
        return reflection.answer(request, sent: &sent)
    }

    private func files(_ response: Grpc_Reflection_V1_ServerReflectionResponse) throws -> [Google_Protobuf_FileDescriptorProto] {
        if case .errorResponse(let error) = response.messageResponse { XCTFail("an error: \(error)") }
        return try response.fileDescriptorResponse.fileDescriptorProto.map {
            try Google_Protobuf_FileDescriptorProto(serializedBytes: $0)
        }
    }

    func testTheCommittedSetHoldsEveryGeneratedServiceAndMethod() throws {
        let reflection = try GRPCReflection(descriptorSet: MoatDescriptorSet.serialized, services: [])
        XCTAssertTrue(reflection.fileNames.contains("google/protobuf/any.proto"), "imports are included")
        var declared: Set<String> = []
        for file in try Google_Protobuf_FileDescriptorSet(serializedBytes: MoatDescriptorSet.serialized).file {
            XCTAssertTrue(file.hasSourceCodeInfo, "\(file.name) keeps its comments")
            for service in file.service where !service.name.isEmpty {
                declared.insert((file.package.isEmpty ? "" : file.package + ".") + service.name)
            }
        }
        let generated = Set(Self.generated.compactMap(\.first?.service))
        XCTAssertEqual(
            declared, generated.union(GRPCReflection.serviceNames),
            "every service of proto/ is listed here (and served), reflection aside")
        var sent: Set<String> = []
        for method in Self.generated.joined() {
            let service = try files(answer(reflection, sent: &sent) { $0.fileContainingSymbol = method.service })
            let byMethod = try files(
                answer(reflection, sent: &sent) { $0.fileContainingSymbol = method.service + "." + method.method })
            XCTAssertEqual(service.first?.name, byMethod.first?.name, method.path)
            let file = try XCTUnwrap(service.first, method.path)
            let declaredService = try XCTUnwrap(file.service.first { file.package + "." + $0.name == method.service })
            XCTAssertTrue(declaredService.method.contains { $0.name == method.method }, method.path)
        }
    }

    func testSymbolsOfEveryKindResolveToTheirFile() throws {
        let reflection = try GRPCReflection(descriptorSet: MoatDescriptorSet.serialized, services: ["moat.v1.Sessions"])
        var sent: Set<String> = []
        let cases = [
            ("moat.v1.Sessions", "moat/v1/sessions.proto"),
            ("moat.v1.Sessions.Validate", "moat/v1/sessions.proto"),
            (".moat.v1.ValidateRequest", "moat/v1/sessions.proto"),
            ("moat.v1.ValidateRequest.token", "moat/v1/sessions.proto"),
            ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
            ("grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"),
            ("google.rpc.ErrorInfo", "google/rpc/error_details.proto"),
            ("google.protobuf.Any", "google/protobuf/any.proto"),
            ("grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo", "grpc/reflection/v1alpha/reflection.proto"),
        ]
        for (symbol, file) in cases {
            XCTAssertEqual(
                try files(answer(reflection, sent: &sent) { $0.fileContainingSymbol = symbol }).first?.name, file, symbol)
        }
        for symbol in ["", "moat", "moat.v1", "moat.v1.Nope", "grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING"] {
            XCTAssertEqual(
                answer(reflection, sent: &sent) { $0.fileContainingSymbol = symbol }.errorResponse.errorCode,
                Int32(Code.notFound.rawValue), symbol)
        }
        XCTAssertEqual(
            answer(reflection, sent: &sent) { $0.fileByFilename = "moat/v1/nope.proto" }.errorResponse.errorCode,
            Int32(Code.notFound.rawValue))
        let listed = answer(reflection, sent: &sent) { $0.listServices = "*" }.listServicesResponse.service.map(\.name)
        XCTAssertEqual(
            listed, ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection", "moat.v1.Sessions"])
    }

    func testImportsAreSentOncePerStreamAndTheAskedFileAlways() throws {
        let reflection = try GRPCReflection(descriptorSet: MoatDescriptorSet.serialized, services: [])
        var sent: Set<String> = []
        let first = try files(answer(reflection, sent: &sent) { $0.fileByFilename = "google/rpc/status.proto" })
        XCTAssertEqual(first.map(\.name), ["google/rpc/status.proto", "google/protobuf/any.proto"])
        let again = try files(answer(reflection, sent: &sent) { $0.fileByFilename = "google/rpc/status.proto" })
        XCTAssertEqual(again.map(\.name), ["google/rpc/status.proto"])
        let any = try files(answer(reflection, sent: &sent) { $0.fileByFilename = "google/protobuf/any.proto" })
        XCTAssertEqual(any.map(\.name), ["google/protobuf/any.proto"])
        var fresh: Set<String> = []
        let details = try files(
            answer(reflection, sent: &fresh) { $0.fileContainingSymbol = "google.rpc.ErrorInfo" })
        XCTAssertEqual(details.map(\.name), ["google/rpc/error_details.proto"], "error_details imports nothing")
    }

    func testExtensionsAreAnsweredFromTheSet() throws {
        let reflection = try GRPCReflection(descriptorSet: MoatDescriptorSet.serialized, services: [])
        var sent: Set<String> = []
        let numbers = answer(reflection, sent: &sent) { $0.allExtensionNumbersOfType = "moat.v1.ValidateRequest" }
        XCTAssertEqual(numbers.allExtensionNumbersResponse.baseTypeName, "moat.v1.ValidateRequest")
        XCTAssertEqual(numbers.allExtensionNumbersResponse.extensionNumber, [], "Moat's messages have no extensions")
        XCTAssertEqual(
            answer(reflection, sent: &sent) { $0.allExtensionNumbersOfType = "moat.v1.Nope" }.errorResponse.errorCode,
            Int32(Code.notFound.rawValue))
        let missing = answer(reflection, sent: &sent) {
            $0.fileContainingExtension.containingType = "moat.v1.ValidateRequest"
            $0.fileContainingExtension.extensionNumber = 1000
        }
        XCTAssertEqual(missing.errorResponse.errorCode, Int32(Code.notFound.rawValue))
        XCTAssertTrue(missing.errorResponse.errorMessage.contains("1000"), missing.errorResponse.errorMessage)

        // A set that declares an extension: found by its extendee and number.
        var base = Google_Protobuf_FileDescriptorProto()
        base.name = "base.proto"
        base.package = "t"
        var message = Google_Protobuf_DescriptorProto()
        message.name = "Base"
        base.messageType = [message]
        var extending = Google_Protobuf_FileDescriptorProto()
        extending.name = "ext.proto"
        extending.package = "t"
        extending.dependency = ["base.proto"]
        var field = Google_Protobuf_FieldDescriptorProto()
        field.name = "extra"
        field.number = 100
        field.extendee = ".t.Base"
        extending.extension = [field]
        var set = Google_Protobuf_FileDescriptorSet()
        set.file = [base, extending]
        let custom = try GRPCReflection(descriptorSet: try set.serializedBytes(), services: [])
        let found = try files(answer(custom, sent: &sent) {
            $0.fileContainingExtension.containingType = "t.Base"
            $0.fileContainingExtension.extensionNumber = 100
        })
        XCTAssertEqual(found.map(\.name), ["ext.proto", "base.proto"])
        XCTAssertEqual(
            answer(custom, sent: &sent) { $0.allExtensionNumbersOfType = "t.Base" }.allExtensionNumbersResponse
                .extensionNumber, [100])
        XCTAssertEqual(try files(answer(custom, sent: &sent) { $0.fileContainingSymbol = "t.extra" }).first?.name, "ext.proto")
    }

    func testABrokenSetIsRefused() throws {
        XCTAssertThrowsError(try GRPCReflection(descriptorSet: Data([0x0A, 0x05, 0x01]), services: []))
        XCTAssertThrowsError(try GRPCReflection(descriptorSet: Data([0x12, 0x00]), services: []), "not field 1")
        var orphan = Google_Protobuf_FileDescriptorProto()
        orphan.name = "orphan.proto"
        orphan.dependency = ["missing.proto"]
        var set = Google_Protobuf_FileDescriptorSet()
        set.file = [orphan]
        XCTAssertThrowsError(try GRPCReflection(descriptorSet: try set.serializedBytes(), services: []))
    }
}
