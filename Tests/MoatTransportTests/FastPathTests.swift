import Foundation
import Logging
import MoatProto
import MoatRPC
import NIOCore
import NIOEmbedded
import Synchronization
import XCTest

@testable import MoatTransport

/// The fast path on an `EmbeddedChannel`: nothing runs the loop, and a
/// task's answer could only come back through the loop, so an answer that
/// is there when `writeInbound` returns was made on the loop's thread
/// without a task.
final class FastPathTests: XCTestCase {
    private let caller = Caller(credentials: PeerCredentials(uid: 1000, gid: 1000, pid: 1), isAdmin: false)

    /// Counts handler (task) runs.
    private final class Runs: Sendable {
        private let count = Atomic<Int>(0)
        func record() { count.add(1, ordering: .relaxed) }
        var value: Int { count.load(ordering: .relaxed) }
    }

    func testAFastPathAnswerIsWrittenInTheReadWithoutATask() throws {
        let runs = Runs()
        let method = ServerMethod(
            descriptor: TestMethods.fast, fastPath: { payload, _ in Data("fast:".utf8) + payload },
            handler: { _, _ in
                runs.record()
                return Data("task".utf8)
            })
        let channel = EmbeddedChannel(
            handler: ServerConnectionHandler(
                router: try Router(services: [TestService(methods: [method])]), caller: caller,
                limits: TransportLimits(), logger: Logger(label: "test")))
        defer { _ = try? channel.finish() }

        for id: UInt64 in 1...3 {
            try channel.writeInbound(try Self.frameBody(request(id: id, method: TestMethods.fast.path, payload: [7])))
            let response = try XCTUnwrap(try Self.readResponse(channel), "call \(id) was not answered within its read")
            XCTAssertEqual(response.id, id)
            XCTAssertEqual(response.status.code, .ok)
            XCTAssertEqual(String(decoding: response.payload, as: UTF8.self), "fast:\u{7}")
        }
        XCTAssertEqual(runs.value, 0, "a handler task ran")
    }

    /// A request as the frame decoder hands it to the handler.
    static func frameBody(_ request: Moat_Rpc_V1_Request) throws -> ByteBuffer {
        ByteBuffer(bytes: try request.serializedBytes() as [UInt8])
    }

    /// The next response written and flushed, if any.
    static func readResponse(_ channel: EmbeddedChannel) throws -> Moat_Rpc_V1_Response? {
        guard var frame = try channel.readOutbound(as: ByteBuffer.self),
            let length = frame.readInteger(as: UInt32.self), let body = frame.readBytes(length: Int(length))
        else { return nil }
        return try Moat_Rpc_V1_Response(serializedBytes: body)
    }
}
