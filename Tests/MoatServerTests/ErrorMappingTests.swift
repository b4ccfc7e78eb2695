import Foundation
import Logging
import MoatClient
import MoatCore
import MoatCrypto
import MoatRPC
import MoatStore
import XCTest

@testable import MoatServer

/// Each layer's errors and the wire status they leave moatd with
/// (`Handlers/ErrorMapping.swift`), converted as the transport does.
final class ErrorMappingTests: XCTestCase {
    /// A store message of the kind SQLite produces: never for the caller.
    private static let internals = "UNIQUE constraint failed: users.email [sql: SELECT password_hash FROM users]"

    func testTransientStoreFailuresAreUnavailableOrResourceExhaustedWithStableReasons() {
        let table: [(StoreError.Reason, Code, String)] = [
            (.busy, .unavailable, "STORE_BUSY"),
            (.closed, .unavailable, "STORE_CLOSED"),
            (.interrupted, .unavailable, "STORE_INTERRUPTED"),
            (.transactionAborted, .unavailable, "STORE_TRANSACTION_ABORTED"),
            (.full, .resourceExhausted, "STORE_FULL"),
            (.noMemory, .resourceExhausted, "STORE_NO_MEMORY"),
            (.unavailable, .unavailable, "STORE_UNAVAILABLE"),
            (.serializationFailure, .unavailable, "SERIALIZATION_FAILURE"),
            (.invalidText, .invalidArgument, "INVALID_TEXT"),
        ]
        XCTAssertEqual(Set(table.map(\.2)), Set(StoreFailureReason.allCases.map(\.rawValue)), "one row per reason")
        for (reason, code, wire) in table {
            let answered = RPCError(answering: StoreError(reason, code: 5, message: Self.internals))
            XCTAssertEqual(answered.code, code, "\(reason)")
            XCTAssertEqual(answered.reason, wire, "\(reason)")
            XCTAssertNotEqual(answered.code, .internal, "\(reason)")
            XCTAssertFalse(answered.message.isEmpty, "\(reason)")
            XCTAssertFalse(answered.message.contains("sql"), "\(reason): \(answered.message)")
            XCTAssertFalse(answered.message.contains("users"), "\(reason): \(answered.message)")
            XCTAssertEqual(answered.details, [:])
            XCTAssertEqual(answered.cause as? StoreError, StoreError(reason, code: 5, message: Self.internals))
        }
    }

    func testSQLiteBusyLockedFullAndNoMemoryReachTheWireAsTransient() {
        // SQLITE_BUSY 5, SQLITE_LOCKED 6, SQLITE_NOMEM 7, SQLITE_INTERRUPT 9,
        // SQLITE_FULL 13, and an extended code (SQLITE_BUSY_SNAPSHOT 517).
        let table: [(Int32, Code, String)] = [
            (5, .unavailable, "STORE_BUSY"), (6, .unavailable, "STORE_BUSY"), (517, .unavailable, "STORE_BUSY"),
            (7, .resourceExhausted, "STORE_NO_MEMORY"), (9, .unavailable, "STORE_INTERRUPTED"),
            (13, .resourceExhausted, "STORE_FULL"),
        ]
        for (sqlite, code, wire) in table {
            let error = StoreError(StoreError.reason(forSQLiteCode: sqlite), code: sqlite, message: Self.internals)
            let answered = RPCError(answering: error)
            XCTAssertEqual(answered.code, code, "sqlite \(sqlite)")
            XCTAssertEqual(answered.reason, wire, "sqlite \(sqlite)")
        }
    }

    func testEveryOtherStoreFailureIsAGenericInternalErrorWithNoInternals() {
        let others: [StoreError.Reason] = [
            .constraintUnique, .constraintForeignKey, .constraintNotNull, .constraintCheck, .constraint, .corrupt,
            .io, .readOnly, .cantOpen, .permission, .tooBig, .misuse, .sql, .noSuchColumn, .unexpectedNull,
            .typeMismatch, .schemaTooNew, .migrationMismatch, .migrationFailed, .invalidConfiguration, .internal,
            .invalidRow, StoreError.Reason(rawValue: "SOMETHING_NEW"),
        ]
        for reason in others {
            let answered = RPCError(answering: StoreError(reason, code: 19, message: Self.internals))
            XCTAssertEqual(answered.code, .internal, "\(reason)")
            XCTAssertEqual(answered.reason, "INTERNAL_ERROR", "\(reason)")
            XCTAssertEqual(answered.message, "internal error", "\(reason)")
            XCTAssertEqual(answered.details, [:])
            XCTAssertTrue(answered.cause is StoreError, "\(reason): logged, not sent")
        }
    }

    func testDomainKindsMapToTheirCodesWithReasonMessageAndDetails() {
        let table: [(DomainError.Kind, Code)] = [
            (.invalidArgument, .invalidArgument), (.notFound, .notFound), (.alreadyExists, .alreadyExists),
            (.permissionDenied, .permissionDenied), (.unauthenticated, .unauthenticated),
            (.failedPrecondition, .failedPrecondition), (.resourceExhausted, .resourceExhausted),
            (.unavailable, .unavailable), (.internal, .internal),
        ]
        for (kind, code) in table {
            let error = DomainError(kind, .signInLocked, "try again in 5 s", details: ["retry_after_seconds": "5"])
            let answered = RPCError(answering: error)
            XCTAssertEqual(answered.code, code, "\(kind)")
            XCTAssertEqual(answered.reason, "SIGN_IN_LOCKED")
            XCTAssertEqual(answered.message, "try again in 5 s")
            XCTAssertEqual(answered.details, ["retry_after_seconds": "5"])
        }
    }

    func testCryptoFailuresAreGenericInternalErrorsWithoutTheirDetail() {
        for reason in CryptoError.Reason.allCases {
            let answered = RPCError(answering: CryptoError(reason, "EVP_DecryptFinal_ex failed for key 3f2a"))
            XCTAssertEqual(answered.code, .internal, "\(reason)")
            XCTAssertEqual(answered.reason, "INTERNAL_ERROR", "\(reason)")
            XCTAssertEqual(answered.message, "internal error", "\(reason)")
            XCTAssertTrue(answered.cause is CryptoError)
        }
    }

    /// The mapping is applied where the server answers: a call that reaches a
    /// closed store gets UNAVAILABLE `STORE_CLOSED`, not INTERNAL.
    func testACallOnAClosedStoreIsUnavailableOverTheSocket() async throws {
        let directory = NSTemporaryDirectory() + "moatd-errors-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = MoatConfiguration()
        configuration.dataDirectory = directory + "/data"
        let daemon = try await MoatDaemon.open(configuration: configuration, logger: Logger(label: "test"))
        try await daemon.server.start()
        let client = MoatClient(socketPath: daemon.configuration.socketPath)
        let before = try await client.tenants.list(.init())
        XCTAssertEqual(before.tenants.count, 0)

        let sqlite = try XCTUnwrap(daemon.sqliteStore)
        await sqlite.close()
        do {
            _ = try await client.tenants.list(.init())
            XCTFail("a closed store answered")
        } catch let error as RPCError {
            XCTAssertEqual(error.code, .unavailable, "\(error)")
            XCTAssertEqual(error.reason, "STORE_CLOSED", "\(error)")
        }
        await client.close()
        await daemon.server.shutdown()
    }
}
