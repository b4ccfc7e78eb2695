@_exported public import MoatProto
@_exported public import MoatRPC
public import Foundation
import MoatTransport

/// A client of the Moat daemon over its Unix socket.
///
/// One instance holds one multiplexed connection, safe to share between any
/// number of tasks; it connects on the first call and again on the next call
/// after the connection dropped (for example when the daemon restarted).
/// Every generated service client hangs off it:
///
/// ```swift
/// let moat = MoatClient(socketPath: "moat-data/moat.sock")
/// let health = try await moat.health.check()
/// ```
///
/// Failures are thrown as ``RPCError`` with the status code, message and
/// stable reason.
public final class MoatClient: ClientTransport, Sendable {
    private let connection: ClientConnection

    /// The daemon's socket path.
    public var socketPath: String { connection.configuration.socketPath }

    /// Creates a client for the daemon listening on `socketPath`.
    ///
    /// - Parameters:
    ///   - socketPath: The daemon's socket.
    ///   - maxFrameSize: The largest response accepted, in bytes.
    ///   - connectTimeout: How long to wait for the connection.
    public init(socketPath: String, maxFrameSize: Int = 1 << 20, connectTimeout: Duration = .seconds(5)) {
        var configuration = ClientConnection.Configuration(socketPath: socketPath)
        configuration.maxFrameSize = maxFrameSize
        configuration.connectTimeout = connectTimeout
        self.connection = ClientConnection(configuration: configuration)
    }

    public func call(_ method: MethodDescriptor, payload: Data, options: CallOptions) async throws -> Data {
        try await connection.call(method, payload: payload, options: options)
    }

    /// Closes the connection; calls in flight fail with CANCELLED.
    public func close() async {
        await connection.close()
    }
}
