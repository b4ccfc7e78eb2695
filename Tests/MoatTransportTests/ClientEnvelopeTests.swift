import Foundation
import MoatProto
import MoatRPC
import NIOCore
import XCTest

@testable import MoatTransport

/// The client's hand-written envelope coding against SwiftProtobuf's.
extension ClientEnvelope.Answer {
    /// The id and payload of an OK answer, nil for a failure.
    var ok: (id: UInt64, payload: Data)? {
        if case .ok(let id, let payload) = self { return (id, payload) }
        return nil
    }
}

final class ClientEnvelopeTests: XCTestCase {
    private func written(
        id: UInt64, method: String = "/moat.v1.Sessions/Validate", options: CallOptions, payload: Data,
        maxFrameSize: Int = 1 << 20
    ) throws -> (ByteBuffer, Moat_Rpc_V1_Request) {
        var buffer = ByteBuffer()
        let length = try ClientEnvelope.writeRequest(
            into: &buffer, id: id, method: method, options: options, payload: payload, maxFrameSize: maxFrameSize)
        XCTAssertEqual(buffer.getInteger(at: 0, as: UInt32.self).map(Int.init), length)
        XCTAssertEqual(buffer.readableBytes, 4 + length)
        let body = Data(buffer.getBytes(at: 4, length: length)!)
        return (buffer, try Moat_Rpc_V1_Request(serializedBytes: body))
    }

    func testRequestDecodesAsSwiftProtobufs() throws {
        let options = CallOptions(
            tenant: "acme", authorization: "tok-é", timeout: .milliseconds(1500),
            metadata: ["client-ip": "192.0.2.1", "user-agent": "", "request-id": String(repeating: "x", count: 300)])
        let payload = Data((0..<200).map { UInt8($0) })
        let (buffer, request) = try written(id: 1 << 40 | 7, options: options, payload: payload)
        XCTAssertEqual(request.id, 1 << 40 | 7)
        XCTAssertEqual(request.method, "/moat.v1.Sessions/Validate")
        XCTAssertEqual(request.tenant, "acme")
        XCTAssertEqual(request.authorization, "tok-é")
        XCTAssertEqual(request.timeoutMs, 1500)
        XCTAssertEqual(request.metadata, options.metadata)
        XCTAssertEqual(request.payload, payload)
        // Byte for byte SwiftProtobuf's encoding but for the map's order.
        let reference: [UInt8] = try request.serializedBytes()
        XCTAssertEqual(buffer.readableBytes - 4, reference.count)
    }

    func testRequestDefaultsAreOmitted() throws {
        let (buffer, request) = try written(id: 1, options: CallOptions(), payload: Data())
        XCTAssertEqual(request, Moat_Rpc_V1_Request.with {
            $0.id = 1
            $0.method = "/moat.v1.Sessions/Validate"
        })
        let reference: [UInt8] = try request.serializedBytes()
        XCTAssertEqual(Array(buffer.readableBytesView.dropFirst(4)), reference)
    }

    func testSubMillisecondTimeoutIsOneMillisecond() throws {
        let (_, request) = try written(id: 1, options: CallOptions(timeout: .microseconds(10)), payload: Data())
        XCTAssertEqual(request.timeoutMs, 1)
    }

    func testOversizedRequestIsRefusedAndLeavesTheBufferAsItWas() throws {
        var buffer = ByteBuffer()
        try ClientEnvelope.writeRequest(
            into: &buffer, id: 1, method: "/a/b", options: CallOptions(), payload: Data([1]), maxFrameSize: 64)
        let before = buffer
        XCTAssertThrowsError(
            try ClientEnvelope.writeRequest(
                into: &buffer, id: 2, method: "/a/b", options: CallOptions(), payload: Data(count: 100),
                maxFrameSize: 64)
        ) { error in
            XCTAssertEqual((error as? RPCError)?.reason, "FRAME_TOO_LARGE")
            XCTAssertEqual((error as? RPCError)?.code, .resourceExhausted)
        }
        XCTAssertEqual(buffer, before)
    }

    private func frame(_ response: Moat_Rpc_V1_Response) throws -> ByteBuffer {
        ByteBuffer(bytes: try response.serializedBytes() as [UInt8])
    }

    func testOkResponse() throws {
        let payload = Data("hello".utf8)
        let answer = try ClientEnvelope.readResponse(frame(.with {
            $0.id = 300
            $0.payload = payload
        }))
        XCTAssertEqual(answer.ok?.id, 300)
        XCTAssertEqual(answer.ok?.payload, payload)
        let empty = try ClientEnvelope.readResponse(frame(.with { $0.id = 2 }))
        XCTAssertEqual(empty.ok?.id, 2)
        XCTAssertEqual(empty.ok?.payload, Data())
    }

    func testOkResponseFromASlice() throws {
        // The frame is a slice of a larger read buffer, as the decoder hands it over.
        var read = ByteBuffer(bytes: [9, 9, 9])
        let body: [UInt8] = try Moat_Rpc_V1_Response.with {
            $0.id = 5
            $0.payload = Data([1, 2, 3])
        }.serializedBytes()
        read.writeBytes(body)
        read.writeBytes([8, 8])
        read.moveReaderIndex(forwardBy: 3)
        let slice = read.readSlice(length: body.count)!
        let answer = try ClientEnvelope.readResponse(slice)
        XCTAssertEqual(answer.ok?.id, 5)
        XCTAssertEqual(answer.ok?.payload, Data([1, 2, 3]))
    }

    func testErrorResponseCarriesTheStatus() throws {
        let answer = try ClientEnvelope.readResponse(frame(.with {
            $0.id = 9
            $0.status.code = .unauthenticated
            $0.status.message = "session expired"
            $0.status.reason = "SESSION_EXPIRED"
            $0.status.details = ["a": "b"]
        }))
        guard case .failed(9, let error) = answer else { return XCTFail("\(answer)") }
        XCTAssertEqual(error.code, .unauthenticated)
        XCTAssertEqual(error.message, "session expired")
        XCTAssertEqual(error.reason, "SESSION_EXPIRED")
        XCTAssertEqual(error.details, ["a": "b"])
    }

    func testConnectionLevelError() throws {
        let answer = try ClientEnvelope.readResponse(frame(.with {
            $0.status.code = .resourceExhausted
            $0.status.reason = "FRAME_TOO_LARGE"
        }))
        guard case .failed(0, let error) = answer else { return XCTFail("\(answer)") }
        XCTAssertEqual(error.reason, "FRAME_TOO_LARGE")
    }

    func testUnknownFieldsAreSkipped() throws {
        var bytes: [UInt8] = try Moat_Rpc_V1_Response.with {
            $0.id = 4
            $0.payload = Data([7])
        }.serializedBytes()
        // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32
        bytes += [9 << 3 | 0, 0x96, 0x01, 10 << 3 | 1] + [UInt8](repeating: 1, count: 8)
        bytes += [11 << 3 | 2, 2, 0xAA, 0xBB, 12 << 3 | 5, 1, 2, 3, 4]
        let answer = try ClientEnvelope.readResponse(ByteBuffer(bytes: bytes))
        XCTAssertEqual(answer.ok?.id, 4)
        XCTAssertEqual(answer.ok?.payload, Data([7]))
    }

    func testMalformedResponsesThrow() {
        let cases: [[UInt8]] = [
            [0x08],  // a tag without its varint
            [0x1A, 0x05, 1, 2],  // a payload longer than the frame
            [0x12, 0x03, 0x08],  // a status longer than the frame
            [0x0F],  // wire type 7
            [0x08] + [UInt8](repeating: 0xFF, count: 11),  // a varint over 64 bits
        ]
        for bytes in cases {
            XCTAssertThrowsError(try ClientEnvelope.readResponse(ByteBuffer(bytes: bytes)), "\(bytes)")
        }
    }
}
