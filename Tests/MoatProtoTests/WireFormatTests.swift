import Foundation
import MoatProto
import MoatRPC
import XCTest

/// Pins the wire format: field numbers and types of the envelope, as the
/// README documents them for clients written in other languages.
final class WireFormatTests: XCTestCase {
    func testRequestFieldNumbers() throws {
        var request = Moat_Rpc_V1_Request()
        request.id = 1
        request.method = "m"
        request.tenant = "t"
        request.timeoutMs = 2
        request.authorization = "a"
        request.payload = Data([9])
        let bytes: [UInt8] = try request.serializedBytes()
        // field 1 varint, 2 string, 3 string, 4 varint, 5 string, 7 bytes
        XCTAssertEqual(
            bytes,
            [0x08, 0x01, 0x12, 0x01, 0x6D, 0x1A, 0x01, 0x74, 0x20, 0x02, 0x2A, 0x01, 0x61, 0x3A, 0x01, 0x09])
    }

    func testMetadataIsAMapInField6() throws {
        var request = Moat_Rpc_V1_Request()
        request.metadata = ["k": "v"]
        let bytes: [UInt8] = try request.serializedBytes()
        XCTAssertEqual(bytes, [0x32, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x76])
    }

    func testResponseAndStatusFieldNumbers() throws {
        var response = Moat_Rpc_V1_Response()
        response.id = 3
        response.status.code = .unauthenticated
        response.status.reason = "R"
        response.payload = Data([1])
        let bytes: [UInt8] = try response.serializedBytes()
        XCTAssertEqual(bytes, [0x08, 0x03, 0x12, 0x05, 0x08, 0x10, 0x1A, 0x01, 0x52, 0x1A, 0x01, 0x01])
    }

    func testEveryCanonicalCodeHasItsGRPCNumber() {
        let expected: [(Moat_Rpc_V1_Code, Int)] = [
            (.ok, 0), (.cancelled, 1), (.unknown, 2), (.invalidArgument, 3), (.deadlineExceeded, 4),
            (.notFound, 5), (.alreadyExists, 6), (.permissionDenied, 7), (.resourceExhausted, 8),
            (.failedPrecondition, 9), (.aborted, 10), (.outOfRange, 11), (.unimplemented, 12),
            (.internal, 13), (.unavailable, 14), (.dataLoss, 15), (.unauthenticated, 16),
        ]
        for (code, number) in expected { XCTAssertEqual(code.rawValue, number) }
    }

    func testGeneratedDescriptors() {
        XCTAssertEqual(Moat_V1_Health.Method.check.path, "/moat.v1.Health/Check")
        XCTAssertEqual(Moat_V1_Health.Method.check.access, .public)
        XCTAssertEqual(Moat_V1_Health.Method.all, [Moat_V1_Health.Method.check])
    }
}
