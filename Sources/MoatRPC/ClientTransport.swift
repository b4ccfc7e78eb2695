public import Foundation
public import SwiftProtobuf

/// Per-call options on the client side.
public struct CallOptions: Sendable {
    /// The tenant the call acts in (slug or id); empty if not tenant-scoped.
    public var tenant: String
    /// The end user's session token for user methods.
    public var authorization: String
    /// How long the server may take; nil means the server default.
    public var timeout: Duration?
    /// Call metadata (`client-ip`, `user-agent`, `request-id`).
    public var metadata: [String: String]

    public init(
        tenant: String = "", authorization: String = "", timeout: Duration? = nil,
        metadata: [String: String] = [:]
    ) {
        self.tenant = tenant
        self.authorization = authorization
        self.timeout = timeout
        self.metadata = metadata
    }
}

/// Something that can carry one call to a server and bring back its answer.
/// Generated client stubs are written against this; `MoatClient` is the
/// socket implementation.
public protocol ClientTransport: Sendable {
    /// Sends one call and returns the response payload, or throws the
    /// call's ``RPCError``.
    func call(_ method: MethodDescriptor, payload: Data, options: CallOptions) async throws -> Data
}

extension ClientTransport {
    /// A unary call over protobuf messages.
    public func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: MethodDescriptor, request: Request, options: CallOptions,
        as: Response.Type = Response.self
    ) async throws -> Response {
        let payload: Data = try request.serializedBytes()
        let bytes = try await call(method, payload: payload, options: options)
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw RPCError(
                code: .internal, message: "server sent an undecodable \(Response.protoMessageName)",
                reason: RPCError.Reason.invalidPayload, cause: error)
        }
    }
}
