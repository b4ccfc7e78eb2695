import Foundation
import MoatProto
import MoatTransport
import NIOCore
import NIOEmbedded

/// Fuzzes the frame decoder and the envelope decoding: the input's first two
/// bytes seed a chunking of the rest, which is fed to a ``FrameDecoder`` in
/// those chunks and again in one piece.
///
/// Invariants: the chunking never changes the frames or the error; every
/// frame is exactly what a plain reading of the length prefixes gives; a
/// frame that decodes as a `Request` re-encodes to a message that decodes
/// to the same `Request`.
public enum FrameFuzzer {
    /// The frame limit the harness decodes with (small, so the fuzzer
    /// reaches the limit).
    public static let maxFrameSize = 4096

    /// Runs one input.
    public static func run(_ data: [UInt8]) throws(FuzzViolation) {
        var input = FuzzInput(data)
        let seed = UInt64(input.uint16())
        let stream = input.rest

        var random = FuzzRandom(seed: seed)
        var chunks: [ArraySlice<UInt8>] = []
        var index = 0
        while index < stream.count {
            let size = 1 + random.below(seed % 3 == 0 ? 8 : 300)
            chunks.append(stream[index..<min(stream.count, index + size)])
            index += size
        }
        let chunked = decode(chunks)
        let whole = decode([stream[...]])
        guard chunked == whole else {
            throw FuzzViolation("chunking changed the result: \(chunked) vs \(whole)")
        }
        let expected = reference(stream)
        guard whole == expected else { throw FuzzViolation("decoder \(whole) differs from the reference \(expected)") }
        for frame in whole.frames {
            guard let request = try? Moat_Rpc_V1_Request(serializedBytes: frame) else { continue }
            guard let again: [UInt8] = try? request.serializedBytes(),
                let back = try? Moat_Rpc_V1_Request(serializedBytes: again), back == request
            else { throw FuzzViolation("a Request did not survive re-encoding") }
        }
    }

    struct Outcome: Equatable, CustomStringConvertible {
        var frames: [[UInt8]] = []
        var error: FrameDecodingError?
        var description: String { "\(frames.count) frames, error \(String(describing: error))" }
    }

    static func decode(_ chunks: [ArraySlice<UInt8>]) -> Outcome {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameSize: maxFrameSize)))
        var outcome = Outcome()
        func drain() {
            while let frame = try? channel.readInbound(as: ByteBuffer.self) {
                outcome.frames.append(Array(frame.readableBytesView))
            }
        }
        do {
            for chunk in chunks {
                var buffer = channel.allocator.buffer(capacity: chunk.count)
                buffer.writeBytes(chunk)
                try channel.writeInbound(buffer)
                drain()
            }
            _ = try channel.finish(acceptAlreadyClosed: true)
        } catch let error as FrameDecodingError {
            outcome.error = error
        } catch {
            outcome.error = .truncated(bufferedBytes: -1)
        }
        drain()
        // Closing breaks the channel's reference cycle with its pipeline
        // (else every input that ends in a decoding error leaks it).
        _ = try? channel.finish(acceptAlreadyClosed: true)
        return outcome
    }

    /// The frames a plain reading of the stream gives, and how it ends.
    static func reference(_ stream: [UInt8]) -> Outcome {
        var outcome = Outcome()
        var index = 0
        while stream.count - index >= 4 {
            let length = stream[index..<index + 4].reduce(0) { $0 << 8 | Int($1) }
            guard length <= maxFrameSize else {
                outcome.error = .frameTooLarge(length: length, limit: maxFrameSize)
                return outcome
            }
            guard stream.count - index - 4 >= length else { break }
            outcome.frames.append(Array(stream[index + 4..<index + 4 + length]))
            index += 4 + length
        }
        if index < stream.count { outcome.error = .truncated(bufferedBytes: stream.count - index) }
        return outcome
    }
}
