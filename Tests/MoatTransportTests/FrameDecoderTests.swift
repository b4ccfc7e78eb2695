import MoatTransport
import NIOCore
import NIOEmbedded
import NIOTestUtils
import XCTest

final class FrameDecoderTests: XCTestCase {
    private func frame(_ body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeFrame(body)
        return buffer
    }

    func testDecodesFramesByteByByteAndInBatches() throws {
        // The verifier feeds the input whole, byte by byte and in random
        // chunks, and checks the same frames come out every time.
        let bodies: [[UInt8]] = [[], [1], [1, 2, 3], Array(repeating: 0xAB, count: 300), [0, 0, 0, 0]]
        var all = ByteBuffer()
        for body in bodies { all.writeFrame(body) }
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [
                (all, bodies.map { ByteBuffer(bytes: $0) }),
                (frame([9, 9]), [ByteBuffer(bytes: [9, 9])]),
            ],
            decoderFactory: { FrameDecoder(maxFrameSize: 1024) })
    }

    func testLengthIsBigEndian() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: 1024)))
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 1, 2] + Array(repeating: 7, count: 258)))
        let out = try XCTUnwrap(channel.readInbound(as: ByteBuffer.self))
        XCTAssertEqual(out.readableBytes, 258)
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testOversizedFrameIsRefusedBeforeItsBody() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: 16)))
        // Only the length prefix: refused without waiting for 17 bytes.
        XCTAssertThrowsError(try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 17]))) { error in
            XCTAssertEqual(error as? FrameDecodingError, .frameTooLarge(length: 17, limit: 16))
        }
        _ = try? channel.finish()
    }

    func testFrameAtTheLimitIsAccepted() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: 16)))
        try channel.writeInbound(frame(Array(repeating: 1, count: 16)))
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self)?.readableBytes, 16)
        _ = try channel.finish()
    }

    func testTruncatedFrameAtEndOfStream() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: 1024)))
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 10, 1, 2, 3]))
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self))
        XCTAssertThrowsError(try channel.finish()) { error in
            XCTAssertEqual(error as? FrameDecodingError, .truncated(bufferedBytes: 7))
        }
    }

    func testProgressEventsMarkPartialFrames() throws {
        final class EventRecorder: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            var events: [FrameProgressEvent] = []
            var frames = 0
            func channelRead(context: ChannelHandlerContext, data: NIOAny) { frames += 1 }
            func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
                if let event = event as? FrameProgressEvent { events.append(event) }
            }
        }
        let recorder = EventRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(
            ByteToMessageHandler(FrameDecoder(maxFrameSize: 1024, reportsProgress: true)), recorder)
        try channel.writeInbound(ByteBuffer(bytes: [0, 0]))
        XCTAssertEqual(recorder.events, [.partialFrameStarted])
        try channel.writeInbound(ByteBuffer(bytes: [0, 2, 1]))
        XCTAssertEqual(recorder.events, [.partialFrameStarted])
        try channel.writeInbound(ByteBuffer(bytes: [2]))
        XCTAssertEqual(recorder.events, [.partialFrameStarted, .partialFrameCompleted])
        XCTAssertEqual(recorder.frames, 1)
        // Whole frames produce no events.
        try channel.writeInbound(frame([1, 2, 3]))
        XCTAssertEqual(recorder.events.count, 2)
        _ = try channel.finish()
    }

    func testDeadlineClamp() {
        var limits = TransportLimits()
        limits.defaultDeadline = .seconds(2)
        limits.maxDeadline = .seconds(5)
        XCTAssertEqual(limits.deadline(forTimeoutMilliseconds: 0), .seconds(2))
        XCTAssertEqual(limits.deadline(forTimeoutMilliseconds: 300), .milliseconds(300))
        XCTAssertEqual(limits.deadline(forTimeoutMilliseconds: 600_000), .seconds(5))
    }
}
