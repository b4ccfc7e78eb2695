internal import CQREncode

/// A QR code matrix produced by libqrencode, with SVG and terminal renderers.
public struct QRCode: Sendable, Hashable {
    /// Error-correction level: the share of the code that may be damaged.
    public enum ErrorCorrection: Sendable, Hashable, CaseIterable {
        /// About 7 %.
        case low
        /// About 15 %. The usual choice for screens.
        case medium
        /// About 25 %.
        case quartile
        /// About 30 %.
        case high

        var level: QRecLevel {
            switch self {
            case .low: QR_ECLEVEL_L
            case .medium: QR_ECLEVEL_M
            case .quartile: QR_ECLEVEL_Q
            case .high: QR_ECLEVEL_H
            }
        }
    }

    /// The QR version (1...40) libqrencode chose for the text.
    public let version: Int
    /// Modules per side (21 for version 1, +4 per version), without quiet zone.
    public let size: Int
    /// The module matrix, row-major: `modules[y][x]`, `true` = dark.
    public let modules: [[Bool]]

    /// Encodes `text` (its UTF-8 bytes, 8-bit mode, case preserved) with the
    /// smallest version that fits.
    ///
    /// - Throws: ``CryptoError/Reason/qrEncodeFailed`` when `text` is empty or
    ///   too long for any QR version at `level` (2953 bytes at `.low`).
    public static func encode(_ text: String, level: ErrorCorrection = .medium) throws(CryptoError) -> QRCode {
        let bytes = Array(text.utf8)
        // Longest 8-bit payload of a version-40 code is 2953 bytes; checking
        // first also keeps the length safely inside an Int32.
        guard !bytes.isEmpty, bytes.count <= 2953 else {
            throw CryptoError(.qrEncodeFailed, "text of \(bytes.count) bytes cannot be a QR code")
        }
        // QRcode_encodeData takes the length explicitly, so embedded NULs are kept.
        let raw = bytes.withUnsafeBufferPointer { buffer in
            QRcode_encodeData(Int32(buffer.count), buffer.baseAddress, 0, level.level)
        }
        guard let raw else {
            throw CryptoError(.qrEncodeFailed, "text of \(bytes.count) bytes does not fit a QR code at this level")
        }
        defer { QRcode_free(raw) }
        let width = Int(raw.pointee.width)
        guard width > 0, let data = raw.pointee.data else {
            throw CryptoError(.qrEncodeFailed, "libqrencode returned an empty symbol")
        }
        // Bit 0 of each byte is the module colour (1 = dark); the other bits are
        // libqrencode's bookkeeping.
        var rows: [[Bool]] = []
        rows.reserveCapacity(width)
        for y in 0..<width {
            var row = [Bool](repeating: false, count: width)
            for x in 0..<width { row[x] = data[y * width + x] & 1 == 1 }
            rows.append(row)
        }
        return QRCode(version: Int(raw.pointee.version), size: width, modules: rows)
    }

    /// The matrix packed one bit per module: `size` rows, each padded to
    /// whole bytes, most significant bit first, 1 = dark (the wire form of
    /// `moat.v1.BeginEnrollmentResponse.qr_modules`).
    public var packedRows: [UInt8] {
        let rowBytes = (size + 7) / 8
        var bytes = [UInt8](repeating: 0, count: rowBytes * size)
        for y in 0..<size {
            for x in 0..<size where modules[y][x] {
                bytes[y * rowBytes + x / 8] |= 0x80 >> UInt8(x % 8)
            }
        }
        return bytes
    }

    /// A matrix from its packed form (``packedRows``); nil unless `size` is
    /// a QR size (21...177, 4k+1) and the byte count matches.
    public init?(size: Int, packedRows bytes: [UInt8]) {
        guard (21...177).contains(size), (size - 17) % 4 == 0 else { return nil }
        let rowBytes = (size + 7) / 8
        guard bytes.count == rowBytes * size else { return nil }
        self.version = (size - 17) / 4
        self.size = size
        self.modules = (0..<size).map { y in
            (0..<size).map { x in bytes[y * rowBytes + x / 8] & (0x80 >> UInt8(x % 8)) != 0 }
        }
    }

    private init(version: Int, size: Int, modules: [[Bool]]) {
        self.version = version
        self.size = size
        self.modules = modules
    }

    /// Whether the module at (`x`, `y`) is dark; `false` outside the matrix
    /// (the quiet zone is light).
    public func isDark(x: Int, y: Int) -> Bool {
        guard y >= 0, y < size, x >= 0, x < size else { return false }
        return modules[y][x]
    }

    /// A standalone SVG document: a white background and one black `<path>`
    /// of the dark modules, with `shape-rendering="crispEdges"`.
    ///
    /// The `viewBox` is in module units and includes the quiet zone
    /// (`size + 2 × quietZone` per side); `width`/`height` are that times
    /// `moduleSize` pixels. `quietZone` is clamped to 0...16 (the standard asks
    /// for 4) and `moduleSize` to 1...64.
    public func svg(quietZone: Int = 4, moduleSize: Int = 8) -> String {
        let quiet = min(max(quietZone, 0), 16)
        let scale = min(max(moduleSize, 1), 64)
        let side = size + 2 * quiet
        let pixels = side * scale
        var path = ""
        // One subpath per horizontal run of dark modules.
        for y in 0..<size {
            var x = 0
            while x < size {
                guard modules[y][x] else { x += 1; continue }
                let start = x
                while x < size, modules[y][x] { x += 1 }
                path += "M\(start + quiet) \(y + quiet)h\(x - start)v1h-\(x - start)z"
            }
        }
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(pixels)" height="\(pixels)" \
            viewBox="0 0 \(side) \(side)" shape-rendering="crispEdges">
            <rect width="\(side)" height="\(side)" fill="#ffffff"/>
            <path fill="#000000" d="\(path)"/>
            </svg>

            """
    }

    /// A text rendering for terminals: each line holds two module rows, drawn
    /// with the half blocks `▀` (upper), `▄` (lower), `█` (both) and space.
    ///
    /// Scanners need dark modules on a light background. Terminals draw glyphs
    /// in the foreground colour over the background colour, so with
    /// `darkBackground: true` (the default, for the usual light-on-dark
    /// terminal) the glyphs paint the *light* modules and the quiet zone, and
    /// the dark modules are left as terminal background: the result is
    /// dark-on-light on screen. Pass `false` for a dark-on-light terminal theme,
    /// where glyphs paint the dark modules instead. Either way, area below the
    /// last module row (odd row counts) is left as background.
    ///
    /// Every line ends with `"\n"`. `quietZone` is clamped to 0...16; 2 is
    /// enough for phone cameras reading a terminal.
    public func terminal(quietZone: Int = 2, darkBackground: Bool = true) -> String {
        let quiet = min(max(quietZone, 0), 16)
        let side = size + 2 * quiet
        // `ink` = painted with a glyph. Outside the symbol-plus-quiet-zone square
        // nothing is painted.
        func ink(_ x: Int, _ y: Int) -> Bool {
            guard y < side else { return false }
            let dark = isDark(x: x - quiet, y: y - quiet)
            return darkBackground ? !dark : dark
        }
        var out = ""
        out.unicodeScalars.reserveCapacity((side + 1) * ((side + 1) / 2))
        var y = 0
        while y < side {
            for x in 0..<side {
                switch (ink(x, y), ink(x, y + 1)) {
                case (true, true): out.unicodeScalars.append("\u{2588}")  // █
                case (true, false): out.unicodeScalars.append("\u{2580}")  // ▀
                case (false, true): out.unicodeScalars.append("\u{2584}")  // ▄
                case (false, false): out.unicodeScalars.append(" ")
                }
            }
            out.unicodeScalars.append("\n")
            y += 2
        }
        return out
    }
}
