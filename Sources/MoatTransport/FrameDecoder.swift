public import NIOCore

/// Why a byte stream could not be cut into frames.
public enum FrameDecodingError: Error, Equatable, Sendable {
    /// The length prefix announced more bytes than the limit allows.
    case frameTooLarge(length: Int, limit: Int)
    /// The stream ended inside a frame.
    case truncated(bufferedBytes: Int)
}

/// Events the decoder sends down the pipeline so the connection handler can
/// time how long a started frame takes to complete.
public enum FrameProgressEvent: Sendable, Equatable {
    /// Bytes of a frame arrived, but not all of it.
    case partialFrameStarted
    /// No partial frame is buffered any more.
    case partialFrameCompleted
}

/// Cuts a byte stream into frames: a 4-byte big-endian length `L`, then `L`
/// bytes. Emits each frame's body as a `ByteBuffer` (a slice, no copy).
///
/// The length is checked against the limit as soon as the prefix arrives, so
/// an oversized frame is refused before its body is buffered.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    /// The largest frame body accepted, in bytes.
    public let maxFrameSize: Int
    /// Whether to fire ``FrameProgressEvent``s (the server does, to time
    /// partial frames).
    public let reportsProgress: Bool
    private var hasPartialFrame = false

    /// Creates a decoder.
    public init(maxFrameSize: Int, reportsProgress: Bool = false) {
        self.maxFrameSize = maxFrameSize
        self.reportsProgress = reportsProgress
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else {
            return needMoreData(context: context, buffer: buffer)
        }
        guard length <= maxFrameSize else {
            throw FrameDecodingError.frameTooLarge(length: Int(length), limit: maxFrameSize)
        }
        guard buffer.readableBytes >= 4 + Int(length) else {
            return needMoreData(context: context, buffer: buffer)
        }
        buffer.moveReaderIndex(forwardBy: 4)
        // Safe: the length was checked against readableBytes above.
        let frame = buffer.readSlice(length: Int(length))!
        context.fireChannelRead(Self.wrapInboundOut(frame))
        if reportsProgress, hasPartialFrame {
            hasPartialFrame = false
            context.fireUserInboundEventTriggered(FrameProgressEvent.partialFrameCompleted)
        }
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if seenEOF, buffer.readableBytes > 0 {
            let buffered = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: buffered)
            throw FrameDecodingError.truncated(bufferedBytes: buffered)
        }
        return .needMoreData
    }

    private mutating func needMoreData(context: ChannelHandlerContext, buffer: ByteBuffer) -> DecodingState {
        if reportsProgress, !hasPartialFrame, buffer.readableBytes > 0 {
            hasPartialFrame = true
            context.fireUserInboundEventTriggered(FrameProgressEvent.partialFrameStarted)
        }
        return .needMoreData
    }
}

extension ByteBuffer {
    /// Appends one frame: the 4-byte big-endian length, then the body.
    @inlinable
    public mutating func writeFrame(_ body: some Collection<UInt8>) {
        writeInteger(UInt32(truncatingIfNeeded: body.count))
        writeBytes(body)
    }
}
