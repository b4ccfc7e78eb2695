import XCTest

@testable import MoatRPC

/// `RPCError(answering:)`: the one conversion from whatever a handler threw
/// to the status the caller gets.
final class ErrorConversionTests: XCTestCase {
    private struct Refusal: Error, RPCErrorConvertible {
        var rpcErrorCode: Code { .failedPrecondition }
        var rpcErrorMessage: String { "refused" }
        var rpcErrorReason: String { "TEST_REFUSED" }
        var rpcErrorDetails: [String: String] { ["retry_after_seconds": "7"] }
    }

    /// Conforms without overriding details or cause: the defaults apply.
    private struct Plain: Error, RPCErrorConvertible {
        var rpcErrorCode: Code { .unavailable }
        var rpcErrorMessage: String { "later" }
        var rpcErrorReason: String { "TEST_LATER" }
    }

    /// Not convertible; its description holds something that must not leave.
    private struct Leaky: Error, CustomStringConvertible {
        var description: String { "password=hunter2 at /var/lib/moat/moat.db" }
    }

    func testAnRPCErrorPassesThroughUnchanged() {
        let cause = Leaky()
        let original = RPCError(
            code: .permissionDenied, message: "no", reason: .adminRequired, details: ["a": "b"], cause: cause)
        let answered = RPCError(answering: original)
        XCTAssertEqual(answered.code, .permissionDenied)
        XCTAssertEqual(answered.message, "no")
        XCTAssertEqual(answered.reason, "ADMIN_REQUIRED")
        XCTAssertEqual(answered.details, ["a": "b"])
        XCTAssertTrue(answered.cause is Leaky)
    }

    func testAConvertibleErrorIsConvertedWithItsDetailsAndItselfAsCause() {
        let answered = RPCError(answering: Refusal())
        XCTAssertEqual(answered.code, .failedPrecondition)
        XCTAssertEqual(answered.message, "refused")
        XCTAssertEqual(answered.reason, "TEST_REFUSED")
        XCTAssertEqual(answered.details, ["retry_after_seconds": "7"])
        XCTAssertTrue(answered.cause is Refusal)

        let plain = RPCError(answering: Plain())
        XCTAssertEqual(plain.code, .unavailable)
        XCTAssertEqual(plain.reason, "TEST_LATER")
        XCTAssertEqual(plain.details, [:])
        XCTAssertTrue(plain.cause is Plain)
    }

    func testCancellationIsCancelled() {
        let answered = RPCError(answering: CancellationError())
        XCTAssertEqual(answered.code, .cancelled)
        XCTAssertEqual(answered.reason, "CANCELLED")
    }

    func testAnythingElseIsAGenericInternalErrorThatKeepsItsCauseInside() {
        let answered = RPCError(answering: Leaky())
        XCTAssertEqual(answered.code, .internal)
        XCTAssertEqual(answered.message, "internal error")
        XCTAssertEqual(answered.reason, "INTERNAL_ERROR")
        XCTAssertEqual(answered.details, [:])
        XCTAssertFalse(answered.description.contains("hunter2"))
        XCTAssertTrue(answered.cause is Leaky)
    }

    func testTheTypedReasonInitializerUsesTheRawValue() {
        let error = RPCError(code: .cancelled, message: "closed", reason: .clientClosed)
        XCTAssertEqual(error.reason, "CLIENT_CLOSED")
        XCTAssertEqual(RPCError(code: .internal, message: "x").reason, "")
    }
}
