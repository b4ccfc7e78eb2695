import Foundation
import Logging
import MoatRPC
import MoatTransport
import NIOCore
import NIOEmbedded
import NIOHPACK
import Synchronization

/// Fuzzes the gRPC side of the socket: the bytes a client sends (the HTTP/2
/// preface, frames, gRPC length-prefixed messages) go, in arbitrary
/// chunkings, into the pipeline moatd installs on every connection
/// (``ConnectionPipeline``: the protocol sniffer, NIO's HTTP/2 handler, the
/// gRPC connection and stream handlers) on an in-memory channel, served by
/// the in-memory daemon of ``RequestFuzzer``.
///
/// Input: two bytes seed the chunking; one byte picks the mode.
/// - raw (even mode byte): the rest is the client's stream after the
///   preface (the committed seeds are grpcio's own connections); with mode
///   bit 2 set the preface is not added (the sniffer sees the bytes as
///   they are);
/// - structured (odd): the preface, an empty SETTINGS, then operations read
///   from the input: gRPC calls (a method from the router or bytes, Moat's
///   metadata, a tenant, a live token, `grpc-timeout`, a message with a
///   right or wrong length prefix and compression flag, split or not, with
///   or without END_STREAM or trailers), RST_STREAM, PING, WINDOW_UPDATE,
///   SETTINGS and arbitrary frames.
///
/// Invariants: no crash; the server's frames parse and their header blocks
/// decode; no call ends `grpc-status: 13` (INTERNAL): wrong input is the
/// client's error; a response that ends a stream with HTTP 200 carries a
/// `grpc-status`; and the connection either answers every request the
/// client finished (response HEADERS or RST_STREAM on its stream) or is
/// closed.
public final class GRPCFuzzer: Sendable {
    /// The request size limit of the fuzzed daemon (small, so the fuzzer
    /// reaches it); HTTP/2 frames stay at their 16 KiB minimum.
    public static let maxFrameSize = 4096
    /// Calls in flight per connection (HTTP/2 concurrent streams), small so
    /// the fuzzer reaches REFUSED_STREAM.
    public static let maxInFlight = 8
    /// How long (real time) a finished request may wait for its answer.
    public static let answerWait: Duration = .seconds(5)

    private let requests = RequestFuzzer()
    private let loop = NIOAsyncTestingEventLoop()

    /// A fuzzer with no daemon yet (built on the first run).
    public init() {}

    /// Drops the in-memory daemon.
    public func shutdown() { requests.shutdown() }

    /// Runs one input.
    public func run(_ data: [UInt8]) throws(FuzzViolation) {
        let world = try requests.currentWorld()
        var input = FuzzInput(data)
        let seed = UInt64(input.uint16())
        let mode = input.byte()
        let stream: [UInt8]
        if mode & 1 == 1 {
            var writer = ClientWriter(world: world)
            writer.structured(&input)
            stream = writer.bytes
        } else {
            stream = (mode & 4 == 0 ? HTTP2Wire.preface : []) + input.rest
        }

        var random = FuzzRandom(seed: seed)
        var chunks: [[UInt8]] = []
        var index = 0
        while index < stream.count {
            let size = 1 + random.below(seed % 3 == 0 ? 16 : 2000)
            chunks.append(Array(stream[index..<min(stream.count, index + size)]))
            index += size
        }
        let expectation = HTTP2Wire.expectation(stream)
        // Not an HTTP/2 preface: the sniffer hands the bytes to the native
        // framing (fuzz-frames and fuzz-requests check that side).
        let http2 = stream.starts(with: HTTP2Wire.preface)
        let pieces = chunks
        let caller = Caller(credentials: PeerCredentials(uid: 1000, gid: 1000, pid: 1), isAdmin: mode & 2 != 0)
        let router = world.router
        let loop = self.loop
        let result: Result<Void, FuzzViolation>
        do {
            result = try Blocking.run { try await Self.serve(pieces, http2, expectation, router, caller, loop) }
        } catch {
            throw FuzzViolation("the in-memory channel failed: \(error)")
        }
        try result.get()
    }

    private static let fuzzedLimits: TransportLimits = {
        var limits = TransportLimits()
        limits.maxFrameSize = maxFrameSize
        limits.maxInFlightPerConnection = maxInFlight
        return limits
    }()

    private static let logger = Logger(label: "moat.fuzz.grpc", factory: { _ in SwiftLogNoOpLogHandler() })

    private static func serve(
        _ chunks: [[UInt8]], _ http2: Bool, _ expectation: HTTP2Wire.Expectation, _ router: Router, _ caller: Caller,
        _ loop: NIOAsyncTestingEventLoop
    ) async throws -> Result<Void, FuzzViolation> {
        let limits = fuzzedLimits
        let channel = try await NIOAsyncTestingChannel(loop: loop) { _ in }
        try await channel.connect(to: SocketAddress(unixDomainSocketPath: "/moat-fuzz.sock")).get()
        try await loop.executeInContext {
            try ConnectionPipeline.install(on: channel, router: router, caller: caller, limits: limits, logger: logger)
        }
        var reader = ServerReader()
        if expectation.largerHeaderTable { reader.allowLargerHeaderTable() }
        let outcome: Result<Void, FuzzViolation>
        do {
            for chunk in chunks {
                guard channel.isActive else { break }
                var buffer = channel.allocator.buffer(capacity: chunk.count)
                buffer.writeBytes(chunk)
                // An error the pipeline passes on (HTTP/2 protocol errors,
                // after GOAWAY) is the connection's end, not a finding.
                _ = try? await channel.writeInbound(buffer)
                if http2 { try await reader.drain(channel) }
            }
            // Handlers run as tasks and hop back to the loop: wait for the
            // answers the client is owed.
            let until = ContinuousClock.now + answerWait
            while http2 {
                await loop.run()
                try await reader.drain(channel)
                let owed = expectation.finished.subtracting(reader.answered)
                if !channel.isActive || reader.sawGoAway || owed.isEmpty { break }
                guard ContinuousClock.now < until else {
                    throw FuzzViolation(
                        "streams \(owed.sorted()) finished their request but got no answer within \(answerWait), "
                            + "and the connection is open")
                }
                try await Task.sleep(for: .microseconds(50))
            }
            outcome = .success(())
        } catch {
            outcome = .failure(error as? FuzzViolation ?? FuzzViolation("the in-memory channel failed: \(error)"))
        }
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await loop.run()
        return outcome
    }
}

extension RequestFuzzer {
    /// The in-memory daemon, rebuilt every ``runsPerWorld`` runs.
    func currentWorld() throws(FuzzViolation) -> World {
        do {
            return try world.withLock { slot throws -> World in
                if let (world, runs) = slot, runs < Self.runsPerWorld {
                    slot = (world, runs + 1)
                    return world
                }
                let fresh = try Blocking.run { try await World.make() }
                slot = (fresh, 1)
                return fresh
            }
        } catch {
            throw FuzzViolation("could not build the in-memory daemon: \(error)")
        }
    }
}

/// HTTP/2 framing as the harness writes and reads it (RFC 9113 §4.1).
enum HTTP2Wire {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    enum FrameType: UInt8 {
        case data = 0, headers, priority, rstStream, settings, pushPromise, ping, goAway, windowUpdate, continuation
    }

    static let endStream: UInt8 = 0x1
    static let ack: UInt8 = 0x1
    static let endHeaders: UInt8 = 0x4
    static let padded: UInt8 = 0x8
    static let priority: UInt8 = 0x20

    struct Frame {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: ArraySlice<UInt8>
    }

    static func frame(_ type: FrameType, flags: UInt8 = 0, stream: UInt32, _ payload: [UInt8] = []) -> [UInt8] {
        frame(type: type.rawValue, flags: flags, stream: stream, payload)
    }

    static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        var bytes: [UInt8] = [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
        bytes += be32(stream & 0x7FFF_FFFF)
        return bytes + payload
    }

    /// `value` in network byte order.
    static func be32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    /// The complete frames of `bytes` (a trailing partial frame is left out).
    static func frames(_ bytes: ArraySlice<UInt8>) -> [Frame] {
        var frames: [Frame] = []
        var index = bytes.startIndex
        while bytes.endIndex - index >= 9 {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            guard bytes.endIndex - index - 9 >= length else { break }
            let stream = bytes[index + 5..<index + 9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF
            frames.append(
                Frame(
                    type: bytes[index + 3], flags: bytes[index + 4], stream: stream,
                    payload: bytes[index + 9..<index + 9 + length]))
            index += 9 + length
        }
        return frames
    }

    /// An HPACK literal header field without indexing, new name, no Huffman
    /// coding (RFC 7541 §6.2.2).
    static func literal(_ name: [UInt8], _ value: [UInt8]) -> [UInt8] {
        [0] + integer(name.count, prefix: 7) + name + integer(value.count, prefix: 7) + value
    }

    static func integer(_ value: Int, prefix: Int, first: UInt8 = 0) -> [UInt8] {
        let limit = (1 << prefix) - 1
        guard value >= limit else { return [first | UInt8(value)] }
        var bytes = [first | UInt8(limit)]
        var rest = value - limit
        while rest >= 128 {
            bytes.append(UInt8(rest % 128 + 128))
            rest /= 128
        }
        bytes.append(UInt8(rest))
        return bytes
    }

    /// The requests a client stream finished: streams whose header block
    /// completed and that END_STREAM ended, minus the ones the client reset.
    struct Expectation {
        var finished: Set<UInt32> = []
        /// Whether a SETTINGS frame allowed a header table over 4,096 bytes.
        var largerHeaderTable = false
    }

    static func expectation(_ stream: [UInt8]) -> Expectation {
        var expectation = Expectation()
        guard stream.starts(with: preface) else { return expectation }
        var opened: Set<UInt32> = []
        var ended: Set<UInt32> = []
        var reset: Set<UInt32> = []
        // A header block in progress: its stream and whether it ends the stream.
        var block: (stream: UInt32, endsStream: Bool)?
        for frame in frames(stream[preface.count...]) {
            if let open = block {
                // Only CONTINUATION of the same stream may follow (else the
                // server ends the connection).
                guard frame.type == FrameType.continuation.rawValue, frame.stream == open.stream else { break }
                if frame.flags & endHeaders != 0 {
                    opened.insert(open.stream)
                    if open.endsStream { ended.insert(open.stream) }
                    block = nil
                }
                continue
            }
            switch FrameType(rawValue: frame.type) {
            case .headers where frame.stream != 0:
                if frame.flags & endHeaders != 0 {
                    opened.insert(frame.stream)
                    if frame.flags & endStream != 0 { ended.insert(frame.stream) }
                } else {
                    block = (frame.stream, frame.flags & endStream != 0)
                }
            case .data where frame.flags & endStream != 0:
                ended.insert(frame.stream)
            case .rstStream:
                reset.insert(frame.stream)
            case .settings:
                var index = frame.payload.startIndex
                while frame.payload.endIndex - index >= 6 {
                    let identifier = UInt16(frame.payload[index]) << 8 | UInt16(frame.payload[index + 1])
                    let value = frame.payload[index + 2..<index + 6].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    if identifier == 1, value > 4096 { expectation.largerHeaderTable = true }
                    index += 6
                }
            default:
                break
            }
        }
        expectation.finished = opened.intersection(ended).subtracting(reset)
        return expectation
    }
}

/// Writes a structured client stream from fuzz choices.
struct ClientWriter {
    let world: RequestFuzzer.World
    var bytes = HTTP2Wire.preface + HTTP2Wire.frame(.settings, stream: 0)
    var nextStream: UInt32 = 1

    static let contentTypes = ["application/grpc", "application/grpc+proto", "application/grpc;charset=x", "text/plain"]
    static let timeoutUnits = Array("HMSmun".utf8)

    init(world: RequestFuzzer.World) { self.world = world }

    var lastStream: UInt32 { nextStream > 1 ? nextStream - 2 : 1 }

    mutating func structured(_ input: inout FuzzInput) {
        var operations = 0
        while input.remaining > 0, operations < 64 {
            operations += 1
            switch input.byte() % 8 {
            case 0, 1, 2:
                call(&input)
            case 3:
                let stream = input.byte() % 2 == 0 ? lastStream : UInt32(input.byte())
                bytes += HTTP2Wire.frame(.rstStream, stream: stream, [0, 0, 0, input.byte() % 14])
            case 4:
                var opaque = input.chunk(limit: 8)
                opaque += [UInt8](repeating: 0, count: 8 - opaque.count)
                bytes += HTTP2Wire.frame(.ping, flags: input.byte() & HTTP2Wire.ack, stream: 0, opaque)
            case 5:
                let stream = input.byte() % 2 == 0 ? 0 : lastStream
                let increment = UInt32(input.uint16())
                bytes += HTTP2Wire.frame(.windowUpdate, stream: stream, HTTP2Wire.be32(increment))
            case 6:
                let choice = input.byte()
                if choice % 4 == 0 {
                    bytes += HTTP2Wire.frame(.settings, flags: HTTP2Wire.ack, stream: 0)
                } else {
                    var payload: [UInt8] = []
                    for _ in 0..<Int(choice % 4) {
                        payload += [0, input.byte() % 8]
                        payload += [input.byte(), input.byte(), input.byte(), input.byte()]
                    }
                    bytes += HTTP2Wire.frame(.settings, stream: 0, payload)
                }
            default:
                let type = input.byte() % 10
                let flags = input.byte()
                let stream: UInt32
                switch input.byte() % 4 {
                case 0: stream = 0
                case 1: stream = lastStream
                case 2: stream = nextStream
                default: stream = UInt32(input.byte())
                }
                bytes += HTTP2Wire.frame(type: type, flags: flags, stream: stream, input.chunk())
            }
        }
    }

    /// One gRPC call on the next stream.
    mutating func call(_ input: inout FuzzInput) {
        let flags = input.byte()
        let pathChoice = Int(input.byte())
        let path =
            pathChoice == 255 ? input.chunk(limit: 64) : Array(world.paths[pathChoice % world.paths.count].utf8)
        var block: [UInt8] = []
        func add(_ name: String, _ value: [UInt8]) { block += HTTP2Wire.literal(Array(name.utf8), value) }
        add(":method", Array((flags & 3 == 3 ? "GET" : "POST").utf8))
        add(":scheme", Array("http".utf8))
        add(":path", path)
        add(":authority", Array("localhost".utf8))
        add("content-type", Array(Self.contentTypes[Int(flags >> 2 & 3)].utf8))
        add("te", Array("trailers".utf8))
        if flags & 0x10 != 0 {
            add("moat-tenant", Array(world.tenants[Int(input.byte()) % world.tenants.count].utf8))
        }
        if flags & 0x20 != 0 {
            let choice = Int(input.byte())
            let value =
                choice % (world.tokens.count + 1) < world.tokens.count
                ? Array("Bearer \(world.tokens[choice % (world.tokens.count + 1)])".utf8) : input.chunk(limit: 128)
            add("authorization", value)
        }
        if flags & 0x40 != 0 {
            let choice = input.byte()
            let value =
                choice == 255
                ? input.chunk(limit: 16)
                : Array("\(input.uint16())".utf8) + [Self.timeoutUnits[Int(choice) % Self.timeoutUnits.count]]
            add("grpc-timeout", value)
        }
        if flags & 0x80 != 0 {
            let name = input.byte() % 4
            switch name {
            case 0: add("moat-client-ip", input.chunk(limit: 64))
            case 1: add("user-agent", input.chunk(limit: 255))
            case 2: add("moat-request-id", input.chunk(limit: 64))
            default: block += HTTP2Wire.literal(input.chunk(limit: 32), input.chunk(limit: 64))
            }
        }
        let body = input.byte()
        let stream = nextStream
        nextStream += 2
        guard body % 8 != 0 else {
            bytes += HTTP2Wire.frame(.headers, flags: HTTP2Wire.endHeaders | HTTP2Wire.endStream, stream: stream, block)
            return
        }
        bytes += HTTP2Wire.frame(.headers, flags: HTTP2Wire.endHeaders, stream: stream, block)
        // A message: mostly a payload of up to 255 bytes; sometimes one at
        // the size limit.
        var payload = input.chunk()
        if body & 0x04 != 0, body & 0x02 != 0 {
            payload += [UInt8](repeating: input.byte(), count: GRPCFuzzer.maxFrameSize - 2 + Int(input.byte() % 4))
        }
        let length = body & 0x10 != 0 ? UInt32(input.byte()) : UInt32(payload.count)
        var message: [UInt8] = [body & 0x08 != 0 ? 1 : 0]
        message += HTTP2Wire.be32(length)
        message += payload
        let endsWithData: UInt8 = body & 0x40 == 0 && body & 0x80 == 0 ? HTTP2Wire.endStream : 0
        var pieces: [[UInt8]] = [message]
        if body & 0x20 != 0, message.count > 1 {
            let cut = 1 + Int(input.byte()) % (message.count - 1)
            pieces = [Array(message[..<cut]), Array(message[cut...])]
        }
        for (index, piece) in pieces.enumerated() {
            var start = 0
            // DATA frames of at most 16 KiB (the HTTP/2 default).
            repeat {
                let end = min(piece.count, start + 16_384)
                let last = index == pieces.count - 1 && end == piece.count
                bytes += HTTP2Wire.frame(
                    .data, flags: last ? endsWithData : 0, stream: stream, Array(piece[start..<end]))
                start = end
            } while start < piece.count
        }
        if body & 0x80 != 0 {
            bytes += HTTP2Wire.frame(
                .headers, flags: HTTP2Wire.endHeaders | HTTP2Wire.endStream, stream: stream,
                HTTP2Wire.literal(Array("x-trailer".utf8), Array("1".utf8)))
        }
    }
}

/// Reads what the server wrote and checks it.
struct ServerReader {
    private var pending: [UInt8] = []
    // HPACK's default table; a client that allows the server a larger one
    // (SETTINGS_HEADER_TABLE_SIZE) gets no header-block check (see headers).
    private var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
    private var decodes = true
    private var block: (stream: UInt32, flags: UInt8, bytes: [UInt8])?
    /// Streams the server answered (HEADERS or RST_STREAM).
    private(set) var answered: Set<UInt32> = []
    /// Whether the server sent GOAWAY (it then closes the connection).
    private(set) var sawGoAway = false

    mutating func drain(_ channel: NIOAsyncTestingChannel) async throws {
        while let data = try await channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else {
                throw FuzzViolation("the server wrote a file region")
            }
            pending += buffer.readableBytesView
        }
        try parsePending()
    }

    /// Reads server bytes given directly (the checks' own tests).
    mutating func read(bytes: [UInt8]) throws(FuzzViolation) {
        pending += bytes
        try parsePending()
    }

    private mutating func parsePending() throws(FuzzViolation) {
        let frames = HTTP2Wire.frames(pending[...])
        var consumed = 0
        for frame in frames {
            consumed += 9 + frame.payload.count
            try read(frame)
        }
        pending.removeFirst(consumed)
    }

    private mutating func read(_ frame: HTTP2Wire.Frame) throws(FuzzViolation) {
        if var open = block {
            guard frame.type == HTTP2Wire.FrameType.continuation.rawValue, frame.stream == open.stream else {
                throw FuzzViolation("the server interrupted a header block with frame type \(frame.type)")
            }
            open.bytes += frame.payload
            block = open
            if frame.flags & HTTP2Wire.endHeaders != 0 {
                block = nil
                try headers(stream: open.stream, flags: open.flags, open.bytes)
            }
            return
        }
        switch HTTP2Wire.FrameType(rawValue: frame.type) {
        case .headers:
            var fragment = frame.payload
            if frame.flags & HTTP2Wire.padded != 0, let pad = fragment.popFirst() {
                fragment = fragment.dropLast(Int(pad))
            }
            if frame.flags & HTTP2Wire.priority != 0 { fragment = fragment.dropFirst(5) }
            if frame.flags & HTTP2Wire.endHeaders != 0 {
                try headers(stream: frame.stream, flags: frame.flags, Array(fragment))
            } else {
                block = (frame.stream, frame.flags, Array(fragment))
            }
        case .rstStream:
            answered.insert(frame.stream)
        case .goAway:
            sawGoAway = true
        default:
            break
        }
    }

    /// The client allowed the server's HPACK encoder a table larger than
    /// the default: blocks are no longer decoded (only counted as answers).
    mutating func allowLargerHeaderTable() { decodes = false }

    private mutating func headers(stream: UInt32, flags: UInt8, _ bytes: [UInt8]) throws(FuzzViolation) {
        answered.insert(stream)
        guard decodes else { return }
        var buffer = ByteBuffer(bytes: bytes)
        let headers: HPACKHeaders
        do {
            headers = try decoder.decodeHeaders(from: &buffer)
        } catch {
            throw FuzzViolation("the server's header block on stream \(stream) does not decode: \(error)")
        }
        if let status = headers.first(name: "grpc-status"), status == String(Code.internal.rawValue) {
            throw FuzzViolation(
                "stream \(stream) ended INTERNAL: \(headers.first(name: "moat-reason") ?? "") "
                    + "\(headers.first(name: "grpc-message") ?? "")")
        }
        let status = headers.first(name: ":status")
        if flags & HTTP2Wire.endStream != 0, status == nil || status == "200", headers.first(name: "grpc-status") == nil {
            throw FuzzViolation("stream \(stream) ended without grpc-status: \(headers.map { $0.name })")
        }
    }
}
