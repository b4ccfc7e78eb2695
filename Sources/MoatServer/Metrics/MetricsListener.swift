import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where the metrics listener binds (`metrics.listen`).
public enum MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    /// `unix:/path`: a Unix stream socket (mode `socket.mode`).
    case unix(String)
    /// `HOST:PORT` with an IP literal host, e.g. `127.0.0.1:9464`.
    case tcp(host: String, port: Int)

    /// Parses `unix:/path` or `HOST:PORT` (`[::1]:PORT` for IPv6).
    public static func parse(_ text: String) -> MetricsAddress? {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty, path.utf8.count < 108,
                !path.contains("\u{0}")
            else { return nil }
            return .unix(path)
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var v4 = in_addr()
        var v6 = in6_addr()
        guard inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 else { return nil }
        return .tcp(host: host, port: port)
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// The metrics listener: HTTP/1.1 with one resource, `GET /metrics` (and
/// `HEAD`), answered in the Prometheus text format; every other path is
/// 404. One request per connection (`Connection: close`). Off unless
/// `metrics.listen` is set.
final class MetricsListener: Service, Sendable {
    let address: MetricsAddress
    let socketMode: UInt32
    let exporter: MetricsExporter
    let logger: Logger

    init(address: MetricsAddress, socketMode: UInt32, exporter: MetricsExporter, logger: Logger) {
        self.address = address
        self.socketMode = socketMode
        self.exporter = exporter
        self.logger = logger
    }

    func run() async throws {
        let exporter = self.exporter
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(exporter: exporter))
                }
            }
        let channel: any Channel
        switch address {
        case .unix(let path):
            try Self.removeStaleSocket(path)
            channel = try await bootstrap.bind(unixDomainSocketPath: path).get()
            chmod(path, mode_t(socketMode))
        case .tcp(let host, let port):
            channel = try await bootstrap.bind(host: host, port: port).get()
        }
        logger.info("serving metrics", metadata: ["moat.metrics.listen": "\(address)"])
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        if case .unix(let path) = address { unlink(path) }
    }

    /// A socket file left by an earlier run is replaced; anything else at
    /// the path is an error.
    static func removeStaleSocket(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw DaemonStartError("metrics.listen: \(path) exists and is not a socket")
        }
        unlink(path)
    }
}

/// Reads one HTTP/1.1 request head (at most 8 KiB, within 10 s), answers
/// it and closes.
final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let maxHeadBytes = 8192
    private let exporter: MetricsExporter
    private var head: [UInt8] = []
    private var answered = false
    private var timeout: Scheduled<Void>?

    init(exporter: MetricsExporter) { self.exporter = exporter }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        timeout = context.eventLoop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        var buffer = unwrapInboundIn(data)
        head.append(contentsOf: buffer.readBytes(length: buffer.readableBytes) ?? [])
        guard let end = Self.endOfHead(head) else {
            if head.count > Self.maxHeadBytes { answer(context, status: "431 Request Header Fields Too Large") }
            return
        }
        let requestLine = head[..<end].split(separator: UInt8(ascii: "\r"), maxSplits: 1).first.map(Array.init) ?? []
        let parts = String(decoding: requestLine, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            answer(context, status: "400 Bad Request")
            return
        }
        let method = parts[0]
        let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else {
            answer(context, status: "404 Not Found")
            return
        }
        guard method == "GET" || method == "HEAD" else {
            answer(context, status: "405 Method Not Allowed", extraHeaders: "Allow: GET, HEAD\r\n")
            return
        }
        answered = true
        let channel = context.channel
        let exporter = self.exporter
        let headOnly = method == "HEAD"
        let promise = context.eventLoop.makePromise(of: String.self)
        promise.completeWithTask { await exporter.render() }
        promise.futureResult.whenSuccess { text in
            let body = Array(text.utf8)
            let response =
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            var buffer = channel.allocator.buffer(capacity: response.utf8.count + body.count)
            buffer.writeString(response)
            if !headOnly { buffer.writeBytes(body) }
            channel.writeAndFlush(buffer).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func answer(_ context: ChannelHandlerContext, status: String, extraHeaders: String = "") {
        answered = true
        let body = status + "\n"
        let response =
            "HTTP/1.1 \(status)\r\nContent-Type: text/plain; charset=utf-8\r\n\(extraHeaders)"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        var buffer = context.channel.allocator.buffer(capacity: response.utf8.count)
        buffer.writeString(response)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// The index of the blank line ending the head, if it has arrived.
    static func endOfHead(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }
}
