import Foundation

/// Draws a report as one SVG: latency over time (p50/p90/p99/max per
/// second), calls per second over time, and the latency distribution (the
/// percentile spectrum, as HdrHistogram plots it).
enum SVGChart {
    static let width = 960.0
    static let left = 80.0
    static let right = 930.0

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    /// Decade ticks (and 2, 5 in between) covering [low, high], in ms.
    static func logTicks(_ low: Double, _ high: Double) -> [Double] {
        var ticks: [Double] = []
        var decade = pow(10, floor(log10(low)))
        while decade <= high * 1.0001 {
            for step in [1.0, 2.0, 5.0] {
                let value = decade * step
                if value >= low * 0.9999 && value <= high * 1.0001 { ticks.append(value) }
            }
            decade *= 10
        }
        return ticks
    }

    static func label(_ ms: Double) -> String {
        if ms >= 1000 { return String(format: "%.3gs", ms / 1000) }
        if ms >= 1 { return String(format: "%.3gms", ms) }
        return String(format: "%.3gµs", ms * 1000)
    }

    static func render(_ report: Report) -> String {
        let height = 930.0
        var svg: [String] = []
        svg.append(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">"
        )
        svg.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>")
        let result = report.result
        svg.append(
            "<text x=\"\(left)\" y=\"24\" fill=\"#333\" font-size=\"13\"><tspan font-size=\"17\" font-weight=\"bold\" fill=\"black\">moat-bench \(escape(report.scenario))</tspan><tspan dx=\"12\">\(escape(report.loadDescription))</tspan></text>"
        )
        let summary = String(
            format: "%.0f calls/s · p50 %@ · p99 %@ · p99.9 %@ · max %@ · %llu errors (%.3f%%) · %d CPUs, load %@",
            result.callsPerSecond, label(result.latencyMs.p50), label(result.latencyMs.p99),
            label(result.latencyMs.p999), label(result.latencyMs.max), result.errors, result.errorRate * 100,
            report.machine.nproc,
            report.machine.loadAverageAtStart.first.map { String(format: "%.2f", $0) } ?? "?")
        svg.append("<text x=\"\(left)\" y=\"46\" fill=\"#333\">\(escape(summary))</text>")
        var y = 62.0
        for note in report.notes.prefix(2) {
            svg.append("<text x=\"\(left)\" y=\"\(f(y))\" fill=\"#a33\" font-size=\"11\">\(escape(note))</text>")
            y += 14
        }

        let timeline = report.timeline
        let tMax = max(1, timeline.map(\.t).max() ?? 1)
        func xTime(_ t: Double) -> Double { left + (right - left) * t / tMax }

        // Panel 1: latency over time (log scale).
        let p1Top = 120.0
        let p1Bottom = 400.0
        let values = timeline.flatMap { [$0.p50Ms, $0.p99Ms, $0.maxMs] }.filter { $0 > 0 }
        let low = pow(10, floor(log10(max(values.min() ?? 0.01, 0.001))))
        let high = pow(10, ceil(log10(max(values.max() ?? 1, low * 10))))
        func yLat(_ ms: Double, top: Double, bottom: Double) -> Double {
            let clamped = min(max(ms, low), high)
            return bottom - (bottom - top) * (log10(clamped) - log10(low)) / (log10(high) - log10(low))
        }
        svg.append(
            "<text x=\"\(left)\" y=\"\(p1Top - 10)\" font-weight=\"bold\">Latency over time (per second; log scale)</text>")
        // Warmup shading.
        if let lastWarmup = timeline.last(where: \.warmup) {
            svg.append(
                "<rect x=\"\(f(left))\" y=\"\(p1Top)\" width=\"\(f(xTime(lastWarmup.t) - left))\" height=\"\(p1Bottom - p1Top)\" fill=\"#eee\"/>"
            )
            svg.append(
                "<text x=\"\(f(left + 4))\" y=\"\(p1Top + 14)\" fill=\"#888\" font-size=\"11\">warmup</text>")
        }
        for tick in logTicks(low, high) {
            let yy = yLat(tick, top: p1Top, bottom: p1Bottom)
            let major = abs(log10(tick) - log10(tick).rounded()) < 1e-9
            svg.append(
                "<line x1=\"\(left)\" x2=\"\(right)\" y1=\"\(f(yy))\" y2=\"\(f(yy))\" stroke=\"\(major ? "#ccc" : "#eee")\"/>")
            svg.append(
                "<text x=\"\(left - 6)\" y=\"\(f(yy + 4))\" text-anchor=\"end\" fill=\"#555\">\(label(tick))</text>")
        }
        timeAxis(&svg, bottom: p1Bottom, tMax: tMax, xTime: xTime)
        let series: [(String, String, KeyPath<TimelinePoint, Double>, String)] = [
            ("p50", "#1f77b4", \.p50Ms, ""), ("p90", "#2ca02c", \.p90Ms, ""), ("p99", "#ff7f0e", \.p99Ms, ""),
            ("max", "#d62728", \.maxMs, " stroke-dasharray=\"4 3\""),
        ]
        for (index, (name, color, path, dash)) in series.enumerated() {
            let points = timeline.filter { $0.calls > 0 }.map {
                "\(f(xTime($0.t))),\(f(yLat($0[keyPath: path], top: p1Top, bottom: p1Bottom)))"
            }
            if points.count > 1 {
                svg.append(
                    "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\"\(dash) points=\"\(points.joined(separator: " "))\"/>"
                )
            } else if let point = points.first {
                let xy = point.split(separator: ",")
                svg.append("<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"3\" fill=\"\(color)\"/>")
            }
            let lx = right - 260 + Double(index) * 65
            svg.append(
                "<line x1=\"\(f(lx))\" x2=\"\(f(lx + 18))\" y1=\"\(p1Top - 14)\" y2=\"\(p1Top - 14)\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>"
            )
            svg.append("<text x=\"\(f(lx + 22))\" y=\"\(p1Top - 10)\">\(name)</text>")
        }

        // Panel 2: calls per second over time.
        let p2Top = 460.0
        let p2Bottom = 580.0
        let rateMax = niceCeiling(max(1, timeline.map(\.callsPerSecond).max() ?? 1))
        svg.append(
            "<text x=\"\(left)\" y=\"\(p2Top - 10)\" font-weight=\"bold\">Calls per second (errors in red)</text>")
        for step in 0...4 {
            let value = rateMax * Double(step) / 4
            let yy = p2Bottom - (p2Bottom - p2Top) * Double(step) / 4
            svg.append("<line x1=\"\(left)\" x2=\"\(right)\" y1=\"\(f(yy))\" y2=\"\(f(yy))\" stroke=\"#eee\"/>")
            svg.append(
                "<text x=\"\(left - 6)\" y=\"\(f(yy + 4))\" text-anchor=\"end\" fill=\"#555\">\(compact(value))</text>")
        }
        let barWidth = max(1, (right - left) / Double(max(1, timeline.count)) * 0.8)
        for point in timeline {
            let h = (p2Bottom - p2Top) * point.callsPerSecond / rateMax
            let errorHeight = point.calls == 0 ? 0 : h * Double(point.errors) / Double(point.calls)
            let x = xTime(point.t) - barWidth
            svg.append(
                "<rect x=\"\(f(x))\" y=\"\(f(p2Bottom - h))\" width=\"\(f(barWidth))\" height=\"\(f(h))\" fill=\"\(point.warmup ? "#bbb" : "#6a9fd4")\"/>"
            )
            if errorHeight > 0 {
                svg.append(
                    "<rect x=\"\(f(x))\" y=\"\(f(p2Bottom - errorHeight))\" width=\"\(f(barWidth))\" height=\"\(f(max(1, errorHeight)))\" fill=\"#d62728\"/>"
                )
            }
        }
        timeAxis(&svg, bottom: p2Bottom, tMax: tMax, xTime: xTime)

        // Panel 3: latency distribution (percentile spectrum).
        let p3Top = 640.0
        let p3Bottom = 870.0
        let distribution = report.distribution.filter { $0.percentile < 100 }
        svg.append(
            "<text x=\"\(left)\" y=\"\(p3Top - 10)\" font-weight=\"bold\">Latency by percentile (measured calls; log scale)</text>"
        )
        if !distribution.isEmpty {
            let maxNines = 6.0
            func xNines(_ percentile: Double) -> Double {
                let nines = min(maxNines, -log10(max(1e-6, 1 - percentile / 100)))
                return left + (right - left) * nines / maxNines
            }
            let dValues = distribution.map(\.latencyMs).filter { $0 > 0 } + [result.latencyMs.max]
            let dLow = pow(10, floor(log10(max(dValues.min() ?? 0.01, 0.001))))
            let dHigh = pow(10, ceil(log10(max(dValues.max() ?? 1, dLow * 10))))
            func yDist(_ ms: Double) -> Double {
                let clamped = min(max(ms, dLow), dHigh)
                return p3Bottom - (p3Bottom - p3Top) * (log10(clamped) - log10(dLow)) / (log10(dHigh) - log10(dLow))
            }
            for tick in logTicks(dLow, dHigh) {
                let yy = yDist(tick)
                svg.append("<line x1=\"\(left)\" x2=\"\(right)\" y1=\"\(f(yy))\" y2=\"\(f(yy))\" stroke=\"#eee\"/>")
                svg.append(
                    "<text x=\"\(left - 6)\" y=\"\(f(yy + 4))\" text-anchor=\"end\" fill=\"#555\">\(label(tick))</text>")
            }
            for (nines, name) in [(0.0, "0%"), (1, "90%"), (2, "99%"), (3, "99.9%"), (4, "99.99%"), (5, "99.999%"), (6, "99.9999%")] {
                let xx = left + (right - left) * nines / maxNines
                svg.append(
                    "<line x1=\"\(f(xx))\" x2=\"\(f(xx))\" y1=\"\(p3Top)\" y2=\"\(p3Bottom)\" stroke=\"#ddd\"/>")
                svg.append(
                    "<text x=\"\(f(xx))\" y=\"\(p3Bottom + 16)\" text-anchor=\"middle\" fill=\"#555\">\(name)</text>")
            }
            let points = distribution.map { "\(f(xNines($0.percentile))),\(f(yDist($0.latencyMs)))" }
            svg.append(
                "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>")
            for (name, value, percentile) in [
                ("p50", result.latencyMs.p50, 50.0), ("p99", result.latencyMs.p99, 99), ("p99.9", result.latencyMs.p999, 99.9),
            ] {
                let xx = xNines(percentile)
                let yy = yDist(value)
                svg.append("<circle cx=\"\(f(xx))\" cy=\"\(f(yy))\" r=\"3.5\" fill=\"#ff7f0e\"/>")
                svg.append(
                    "<text x=\"\(f(xx + 6))\" y=\"\(f(yy - 6))\" fill=\"#333\">\(name) \(escape(label(value)))</text>")
            }
            svg.append(
                "<text x=\"\(f((left + right) / 2))\" y=\"\(p3Bottom + 34)\" text-anchor=\"middle\" fill=\"#555\">percentile</text>"
            )
        }
        svg.append("</svg>")
        return svg.joined(separator: "\n") + "\n"
    }

    static func timeAxis(_ svg: inout [String], bottom: Double, tMax: Double, xTime: (Double) -> Double) {
        svg.append("<line x1=\"\(left)\" x2=\"\(right)\" y1=\"\(bottom)\" y2=\"\(bottom)\" stroke=\"#888\"/>")
        let step = max(1, niceCeiling(tMax / 10))
        var t = 0.0
        while t <= tMax + 1e-9 {
            let xx = xTime(t)
            svg.append("<line x1=\"\(f(xx))\" x2=\"\(f(xx))\" y1=\"\(bottom)\" y2=\"\(bottom + 4)\" stroke=\"#888\"/>")
            svg.append(
                "<text x=\"\(f(xx))\" y=\"\(bottom + 16)\" text-anchor=\"middle\" fill=\"#555\">\(String(format: "%gs", t))</text>")
            t += step
        }
    }

    static func niceCeiling(_ value: Double) -> Double {
        let magnitude = pow(10, floor(log10(value)))
        for step in [1.0, 2.0, 2.5, 5.0, 10.0] where magnitude * step >= value { return magnitude * step }
        return magnitude * 10
    }

    static func compact(_ value: Double) -> String {
        if value >= 1e6 { return String(format: "%gM", (value / 1e5).rounded() / 10) }
        if value >= 1e3 { return String(format: "%gk", (value / 1e2).rounded() / 10) }
        return String(format: "%g", value)
    }
}
