import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import MoatCrypto

/// The full path of an executable on `PATH`, or `nil`.
func executable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// Runs `tool` with `arguments` (posix_spawn, stderr discarded); returns its
/// exit status and standard output. posix_spawn rather than Foundation.Process,
/// whose Linux implementation leaks a little and would muddy LeakSanitizer runs.
func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    struct SpawnError: Error { let step: String; let code: Int32 }
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw SpawnError(step: "pipe", code: errno) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addclose(&actions, fds[0])
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[1])
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = ([tool] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, tool, &actions, nil, argv, environ)
    close(fds[1])
    defer { close(fds[0]) }
    guard rc == 0 else { throw SpawnError(step: "posix_spawn", code: rc) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
        if n > 0 {
            output += chunk[0..<n]
        } else if n == 0 || errno != EINTR {
            break
        }
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw SpawnError(step: "waitpid", code: errno) }
    }
    // WIFEXITED / WEXITSTATUS are macros Swift cannot import.
    let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
    return (exitStatus, String(decoding: output, as: UTF8.self))
}

let scanToolsAvailable = executable("rsvg-convert") != nil && executable("zbarimg") != nil

@Suite("QR code")
struct QRCodeTests {
    static let uri = TOTP.keyURI(
        issuer: "Acme & Sons Co", account: "jane.doe@example.com",
        secret: utf8("12345678901234567890"))

    @Test("matrix shape and finder patterns")
    func matrix() throws {
        let code = try QRCode.encode(Self.uri, level: .medium)
        #expect((1...40).contains(code.version))
        #expect(code.size == 17 + 4 * code.version)
        #expect(code.modules.count == code.size)
        #expect(code.modules.allSatisfy { $0.count == code.size })
        // The three 7x7 finder patterns: dark ring, light ring, dark 3x3 centre.
        for (ox, oy) in [(0, 0), (code.size - 7, 0), (0, code.size - 7)] {
            for y in 0..<7 {
                for x in 0..<7 {
                    let ring = max(abs(x - 3), abs(y - 3))
                    #expect(code.modules[oy + y][ox + x] == (ring != 2), "finder at \(ox),\(oy)")
                }
            }
        }
        #expect(!code.isDark(x: -1, y: 0) && !code.isDark(x: 0, y: code.size))
        // Case is preserved (8-bit mode), so upper and lower case differ.
        #expect(try QRCode.encode("abc").modules != (try QRCode.encode("ABC").modules))
        // Higher error correction never gives a smaller symbol.
        #expect(try QRCode.encode(Self.uri, level: .high).size >= code.size)
    }

    @Test("empty and oversized text throw QR_ENCODE_FAILED")
    func failures() {
        for text in ["", String(repeating: "x", count: 3000), String(repeating: "x", count: 2400)] {
            let level: QRCode.ErrorCorrection = text.count == 2400 ? .high : .low
            #expect { try QRCode.encode(text, level: level) } throws: { error in
                (error as? CryptoError)?.reason == .qrEncodeFailed
            }
        }
        #expect(throws: Never.self) { try QRCode.encode(String(repeating: "x", count: 2953), level: .low) }
        #expect(throws: Never.self) { try QRCode.encode("a\u{0}b") }
    }

    @Test("SVG structure")
    func svgStructure() throws {
        let code = try QRCode.encode(Self.uri)
        let svg = code.svg(quietZone: 4, moduleSize: 8)
        let side = code.size + 8
        #expect(svg.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.contains("viewBox=\"0 0 \(side) \(side)\""))
        #expect(svg.contains("width=\"\(side * 8)\" height=\"\(side * 8)\""))
        #expect(svg.contains("shape-rendering=\"crispEdges\""))
        #expect(svg.contains("<rect width=\"\(side)\" height=\"\(side)\" fill=\"#ffffff\"/>"))
        #expect(svg.components(separatedBy: "<path").count == 2)
        #expect(svg.hasSuffix("</svg>\n"))
        // The top-left finder's first row is one 7-module run inside the quiet zone.
        #expect(svg.contains("d=\"M4 4h7v1h-7z"))
        // Out-of-range arguments are clamped, not trapped.
        #expect(code.svg(quietZone: Int.max, moduleSize: Int.max).contains("viewBox"))
        #expect(code.svg(quietZone: -3, moduleSize: -3).contains("viewBox=\"0 0 \(code.size) \(code.size)\""))
    }

    @Test("terminal rendering maps back to the modules, inverted for dark terminals")
    func terminal() throws {
        let code = try QRCode.encode(Self.uri)
        for darkBackground in [true, false] {
            let quiet = 2
            let text = code.terminal(quietZone: quiet, darkBackground: darkBackground)
            let side = code.size + 2 * quiet
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            #expect(text.hasSuffix("\n"))
            #expect(lines.count == (side + 1) / 2)
            for (row, line) in lines.enumerated() {
                let cells = Array(line.unicodeScalars)
                #expect(cells.count == side)
                for (x, cell) in cells.enumerated() {
                    let (top, bottom): (Bool, Bool)
                    switch cell {
                    case "\u{2588}": (top, bottom) = (true, true)
                    case "\u{2580}": (top, bottom) = (true, false)
                    case "\u{2584}": (top, bottom) = (false, true)
                    case " ": (top, bottom) = (false, false)
                    default:
                        Issue.record("unexpected character \(cell)")
                        continue
                    }
                    // Painted = light module (dark terminal) or dark module (light terminal).
                    for (dy, painted) in [(0, top), (1, bottom)] {
                        let y = 2 * row + dy
                        if y >= side {
                            #expect(!painted, "nothing painted below the symbol")
                        } else {
                            let dark = code.isDark(x: x - quiet, y: y - quiet)
                            #expect(painted == (darkBackground ? !dark : dark), "module \(x),\(y)")
                        }
                    }
                }
            }
        }
        // Dark-terminal output starts with a painted (light) quiet zone.
        let first = code.terminal().split(separator: "\n").first.map(String.init) ?? ""
        #expect(first == String(repeating: "\u{2588}", count: code.size + 4))
    }

    @Test(
        "the SVG renders and scans back to the exact URI (rsvg-convert + zbarimg)",
        .enabled(if: scanToolsAvailable, "needs rsvg-convert (librsvg2-bin) and zbarimg (zbar-tools)"))
    func scan() throws {
        let code = try QRCode.encode(Self.uri, level: .medium)
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("moatcrypto-qr-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer {
            if ProcessInfo.processInfo.environment["MOAT_KEEP_QR"] == nil {
                try? FileManager.default.removeItem(at: dir)
            }
        }
        let svgURL = dir.appendingPathComponent("code.svg")
        let pngURL = dir.appendingPathComponent("code.png")
        try code.svg().write(to: svgURL, atomically: true, encoding: .utf8)
        let render = try run(executable("rsvg-convert") ?? "", ["-o", pngURL.path, svgURL.path])
        #expect(render.status == 0)
        let scan = try run(executable("zbarimg") ?? "", ["--quiet", "--raw", pngURL.path])
        #expect(scan.status == 0)
        #expect(scan.output == Self.uri + "\n")
        if ProcessInfo.processInfo.environment["MOAT_KEEP_QR"] != nil {
            print("QR PNG kept at \(pngURL.path)")
        }
    }

    @Test(
        "the terminal rendering, painted as a light-on-dark terminal shows it, scans back (zbarimg)",
        .enabled(if: executable("zbarimg") != nil, "needs zbarimg (zbar-tools)"))
    func scanTerminal() throws {
        let code = try QRCode.encode(Self.uri)
        let lines = code.terminal().split(separator: "\n")
        // Paint it like a dark terminal: glyph halves in white on black, 4 px per
        // half cell, with a black terminal margin around it.
        let scale = 4, margin = 4
        let width = (lines.first?.unicodeScalars.count ?? 0) + 2 * margin
        let height = 2 * lines.count + 2 * margin
        var pixels = [UInt8](repeating: 0, count: width * scale * height * scale)
        for (row, line) in lines.enumerated() {
            for (column, cell) in line.unicodeScalars.enumerated() {
                let halves: [Bool] = switch cell {
                case "\u{2588}": [true, true]
                case "\u{2580}": [true, false]
                case "\u{2584}": [false, true]
                default: [false, false]
                }
                for (dy, lit) in halves.enumerated() where lit {
                    let y0 = (margin + 2 * row + dy) * scale, x0 = (margin + column) * scale
                    for y in y0..<(y0 + scale) {
                        for x in x0..<(x0 + scale) { pixels[y * width * scale + x] = 255 }
                    }
                }
            }
        }
        let pgm = Data("P5 \(width * scale) \(height * scale) 255\n".utf8) + Data(pixels)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("moatcrypto-term-\(UUID().uuidString).pgm")
        try pgm.write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let scan = try run(executable("zbarimg") ?? "", ["--quiet", "--raw", url.path])
        #expect(scan.status == 0)
        #expect(scan.output == Self.uri + "\n")
    }
}
