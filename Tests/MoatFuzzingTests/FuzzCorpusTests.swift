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
