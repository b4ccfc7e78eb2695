import Foundation
import XCTest

@testable import MoatFuzzing

/// Replays the committed seed corpora (fuzz/corpus) and every regression
/// input found by fuzzing (fuzz/regressions) through the harness checks,
/// so the harnesses stay buildable and green without libFuzzer.
final class FuzzCorpusTests: XCTestCase {
    private static let fuzzRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz")

    private func inputs(_ target: String) throws -> [(String, [UInt8])] {
        var found: [(String, [UInt8])] = []
        for folder in ["corpus", "regressions"] {
            let directory = Self.fuzzRoot.appendingPathComponent(folder).appendingPathComponent(target)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { continue }
            for name in names.sorted() {
                let bytes = try Data(contentsOf: directory.appendingPathComponent(name))
                found.append(("\(folder)/\(target)/\(name)", Array(bytes)))
            }
        }
        return found
    }

    private func replay(_ target: String, minimum: Int, _ run: ([UInt8]) throws -> Void) throws {
        let all = try inputs(target)
        XCTAssertGreaterThanOrEqual(all.count, minimum, "the \(target) corpus is committed")
        for (name, bytes) in all {
            XCTAssertNoThrow(try run(bytes), name)
        }
    }

    func testFrameCorpus() throws { try replay("frames", minimum: 3) { try FrameFuzzer.run($0) } }

    func testConfigurationCorpus() throws { try replay("config", minimum: 3) { try ConfigurationFuzzer.run($0) } }

    func testUserAgentCorpus() throws { try replay("user-agent", minimum: 5) { try UserAgentFuzzer.run($0) } }

    func testRequestCorpus() throws {
        let fuzzer = RequestFuzzer()
        defer { fuzzer.shutdown() }
        try replay("requests", minimum: 50) { try fuzzer.run($0) }
    }

    func testGRPCCorpus() throws {
        let fuzzer = GRPCFuzzer()
        defer { fuzzer.shutdown() }
        try replay("grpc", minimum: 6) { try fuzzer.run($0) }
    }

    /// A structured gRPC input: a Health check and a SignIn with the wrong
    /// password, written by the harness, each answered.
    func testStructuredGRPCCallsAreAnswered() throws {
        let fuzzer = GRPCFuzzer()
        defer { fuzzer.shutdown() }
        // seed, mode (structured, admin), op 0 (call), flags (tenant), path index 255 (bytes), the path, tenant 0,
        // body byte 1 (a message), payload.
        let path = Array("/grpc.health.v1.Health/Check".utf8)
        var input: [UInt8] = [0, 1, 3, 0, 0x10, 255, UInt8(path.count)] + path + [0, 1, 0]
        XCTAssertNoThrow(try fuzzer.run(input))
        input += [4, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0]  // a PING after the call
        XCTAssertNoThrow(try fuzzer.run(input))
    }

    /// The gRPC checks can fail: an INTERNAL answer, a 200 that ends a
    /// stream without grpc-status, and the streams a client finished.
    func testTheGRPCChecksSeeInternalAndMissingStatusAndOwedStreams() throws {
        func headerBlock(_ fields: [(String, String)]) -> [UInt8] {
            fields.flatMap { HTTP2Wire.literal(Array($0.0.utf8), Array($0.1.utf8)) }
        }
        var reader = ServerReader()
        let internalError = HTTP2Wire.frame(
            .headers, flags: HTTP2Wire.endHeaders | HTTP2Wire.endStream, stream: 1,
            headerBlock([(":status", "200"), ("grpc-status", "13")]))
        XCTAssertThrowsError(try reader.read(bytes: internalError)) { error in
            XCTAssertTrue("\(error)".contains("INTERNAL"), "\(error)")
        }
        reader = ServerReader()
        let noStatus = HTTP2Wire.frame(
            .headers, flags: HTTP2Wire.endHeaders | HTTP2Wire.endStream, stream: 3, headerBlock([(":status", "200")]))
        XCTAssertThrowsError(try reader.read(bytes: noStatus))
        reader = ServerReader()
        let fine = HTTP2Wire.frame(
            .headers, flags: HTTP2Wire.endHeaders | HTTP2Wire.endStream, stream: 5,
            headerBlock([(":status", "200"), ("grpc-status", "16")]))
        XCTAssertNoThrow(try reader.read(bytes: fine + HTTP2Wire.frame(.rstStream, stream: 7, [0, 0, 0, 8])))
        XCTAssertEqual(reader.answered, [5, 7])

        // Stream 1 finished (HEADERS, DATA with END_STREAM); 3 only opened; 5 finished and reset by the client;
        // 7's header block is finished by CONTINUATION with END_STREAM on its HEADERS.
        var client = HTTP2Wire.preface + HTTP2Wire.frame(.settings, stream: 0)
        client += HTTP2Wire.frame(.headers, flags: HTTP2Wire.endHeaders, stream: 1, [0x82])
        client += HTTP2Wire.frame(.data, flags: HTTP2Wire.endStream, stream: 1, [0, 0, 0, 0, 0])
        client += HTTP2Wire.frame(.headers, flags: HTTP2Wire.endHeaders, stream: 3, [0x82])
        client += HTTP2Wire.frame(.headers, flags: HTTP2Wire.endHeaders | HTTP2Wire.endStream, stream: 5, [0x82])
        client += HTTP2Wire.frame(.rstStream, stream: 5, [0, 0, 0, 8])
        client += HTTP2Wire.frame(.headers, flags: HTTP2Wire.endStream, stream: 7, [0x82])
        client += HTTP2Wire.frame(.continuation, flags: HTTP2Wire.endHeaders, stream: 7, [0x84])
        client += HTTP2Wire.frame(.headers, flags: HTTP2Wire.endHeaders | HTTP2Wire.endStream, stream: 9, [0x82])
        client.removeLast()
        XCTAssertEqual(HTTP2Wire.expectation(client).finished, [1, 7])
        XCTAssertEqual(HTTP2Wire.expectation(Array(client.dropFirst())).finished, [], "no preface, no HTTP/2")
    }

    /// The checks can fail: a harness that never reports is no harness.
    func testTheFrameCheckSeesAMismatchAndTheReferenceReadsFrames() throws {
        let stream: [UInt8] = [0, 0, 0, 2, 0xAA, 0xBB, 0, 0, 0, 1, 0xCC, 0, 0]
        let reference = FrameFuzzer.reference(stream)
        XCTAssertEqual(reference.frames, [[0xAA, 0xBB], [0xCC]])
        XCTAssertEqual(reference.error, .truncated(bufferedBytes: 2))
        XCTAssertEqual(FrameFuzzer.decode([stream[...]]), reference)
        XCTAssertEqual(FrameFuzzer.decode(stream.map { [$0][...] }), reference)
        let tooLarge: [UInt8] = [0, 0, 0x10, 0x01]
        XCTAssertEqual(
            FrameFuzzer.decode([tooLarge[...]]).error, .frameTooLarge(length: 4097, limit: FrameFuzzer.maxFrameSize))
    }
}
