public import Foundation
public import SwiftProtobuf

/// One method a server answers: its descriptor and a handler from request
/// bytes to response bytes. Generated service code builds these with
/// ``unary(_:handler:)``; the transport never sees message types.
public struct ServerMethod: Sendable {
    /// The method's name and access level.
    public let descriptor: MethodDescriptor
    /// Decodes the request, runs the service and encodes the response.
    public let handler: @Sendable (_ payload: Data, _ context: RequestContext) async throws -> Data
    /// An optional synchronous answer, tried first on the transport's own
    /// thread: it returns the response, throws the call's error, or returns
    /// nil when only ``handler`` can answer (for example a cache miss). It
    /// must never block.
    public let fastPath: (@Sendable (_ payload: Data, _ context: RequestContext) throws -> Data?)?
    /// An optional answer without a task, used by the native transport in
    /// place of ``handler`` when ``fastPath`` returned nil: it starts the
    /// work and calls `completion` exactly once, from any thread (a store
    /// thread, say), with what ``handler`` would have returned or thrown.
    /// It must never block, and neither may `completion`'s caller wait for
    /// it. Saves the task and its executor hops for a call that waits only
    /// for one store read (a Validate cache miss).
    public let completionPath: CompletionPath?

    /// See ``completionPath``.
    public typealias CompletionPath = @Sendable (
        _ payload: Data, _ context: RequestContext,
        _ completion: @escaping @Sendable (Result<Data, any Error>) -> Void
    ) -> Void

    /// Creates a method from a bytes-level handler.
    public init(
        descriptor: MethodDescriptor,
        fastPath: (@Sendable (_ payload: Data, _ context: RequestContext) throws -> Data?)? = nil,
        completionPath: CompletionPath? = nil,
        handler: @escaping @Sendable (_ payload: Data, _ context: RequestContext) async throws -> Data
    ) {
        self.descriptor = descriptor
        self.fastPath = fastPath
        self.completionPath = completionPath
        self.handler = handler
    }

    /// A unary method over protobuf messages with a synchronous fast path
    /// (see ``fastPath``) in front of its async handler.
    public static func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ descriptor: MethodDescriptor,
        fastPath: @escaping @Sendable (Request, RequestContext) throws -> Response?,
        handler: @escaping @Sendable (Request, RequestContext) async throws -> Response
    ) -> ServerMethod {
        ServerMethod(
            descriptor: descriptor,
            fastPath: { payload, context in
                let request = try decodeRequest(Request.self, from: payload, method: descriptor)
                guard let response = try fastPath(request, context) else { return nil }
                return try response.serializedBytes()
            },
            handler: { payload, context in
                let request = try decodeRequest(Request.self, from: payload, method: descriptor)
                return try await handler(request, context).serializedBytes()
            })
    }

    /// A unary method over protobuf messages with a synchronous fast path
    /// and a task-free completion path (see ``completionPath``) in front of
    /// its async handler.
    public static func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ descriptor: MethodDescriptor,
        fastPath: @escaping @Sendable (Request, RequestContext) throws -> Response?,
        completionPath: @escaping @Sendable (
            Request, RequestContext, _ completion: @escaping @Sendable (Result<Response, any Error>) -> Void
        ) -> Void,
        handler: @escaping @Sendable (Request, RequestContext) async throws -> Response
    ) -> ServerMethod {
        let base = unary(descriptor, fastPath: fastPath, handler: handler)
        return ServerMethod(
            descriptor: descriptor, fastPath: base.fastPath,
            completionPath: { payload, context, completion in
                let request: Request
                do {
                    request = try decodeRequest(Request.self, from: payload, method: descriptor)
                } catch {
                    return completion(.failure(error))
                }
                completionPath(request, context) { result in
                    completion(result.flatMap { response in Result<Data, any Error> { try response.serializedBytes() } })
                }
            },
            handler: base.handler)
    }

    /// A unary method over protobuf messages. A payload that does not decode
    /// as `Request` fails with INVALID_ARGUMENT (`INVALID_PAYLOAD`).
    public static func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ descriptor: MethodDescriptor,
        handler: @escaping @Sendable (Request, RequestContext) async throws -> Response
    ) -> ServerMethod {
        ServerMethod(descriptor: descriptor) { payload, context in
            let request = try decodeRequest(Request.self, from: payload, method: descriptor)
            let response = try await handler(request, context)
            return try response.serializedBytes()
        }
    }
}

/// Decodes a method's request message, mapping failure to INVALID_ARGUMENT.
@inlinable
public func decodeRequest<Request: SwiftProtobuf.Message>(
    _ type: Request.Type, from payload: Data, method: MethodDescriptor
) throws -> Request {
    do {
        return try Request(serializedBytes: payload)
    } catch {
        throw RPCError(
            code: .invalidArgument,
            message: "payload is not a valid \(Request.protoMessageName) for \(method.path)",
            reason: RPCError.Reason.invalidPayload)
    }
}

/// A service: a set of methods. Generated service protocols refine this and
/// provide `methods` from the protocol's requirements.
public protocol RPCService: Sendable {
    /// The methods this service answers.
    var methods: [ServerMethod] { get }
}
