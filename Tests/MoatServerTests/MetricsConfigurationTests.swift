import XCTest

@testable import MoatServer

/// `metrics.listen` and the help lines the exporter adds for promtool.
final class MetricsConfigurationTests: XCTestCase {
    func testListenIsOffByDefault() throws {
        XCTAssertNil(try ConfigurationLoader.load(file: nil).metrics.listen)
        XCTAssertNil(try ConfigurationLoader.load(file: nil, overrides: [#"metrics.listen="""#]).metrics.listen)
    }

    func testUnixAndLoopbackAddresses() throws {
        let unix = try ConfigurationLoader.load(file: nil, overrides: [#"metrics.listen="unix:/run/moat/metrics.sock""#])
        XCTAssertEqual(unix.metrics.listen, .unix("/run/moat/metrics.sock"))
        let tcp = try ConfigurationLoader.load(file: nil, overrides: [#"metrics.listen="127.0.0.1:9464""#])
        XCTAssertEqual(tcp.metrics.listen, .tcp(host: "127.0.0.1", port: 9464))
        XCTAssertEqual(MetricsAddress.parse("[::1]:9464"), .tcp(host: "::1", port: 9464))
        XCTAssertEqual(MetricsAddress.tcp(host: "::1", port: 9464).description, "[::1]:9464")
        // What --print-config writes loads back.
        let rendered = ConfigurationLoader.render(unix)
        XCTAssertTrue(rendered.contains(#"listen = "unix:/run/moat/metrics.sock""#), rendered)
    }

    func testBadAddressesNameTheKey() {
        for bad in ["localhost:9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "unix:", "http://127.0.0.1:9464"] {
            XCTAssertThrowsError(try ConfigurationLoader.load(file: nil, overrides: ["metrics.listen=\"\(bad)\""]), bad) {
                error in
                XCTAssertEqual((error as? ConfigurationError)?.key, "metrics.listen", "\(error)")
            }
        }
    }

    func testEveryFamilyGetsAHelpLine() {
        let text = """
            # TYPE moat_rpc_requests_total counter
            moat_rpc_requests_total{method="/moat.v1.Health/Check",code="OK"} 3
            # TYPE moat_unlisted gauge
            moat_unlisted 1

            """
        let helped = MetricsExporter.addingHelp(to: text)
        XCTAssertTrue(helped.hasPrefix("# HELP moat_rpc_requests_total RPC calls answered"), helped)
        XCTAssertTrue(helped.contains("# HELP moat_unlisted Moat metric moat_unlisted.\n# TYPE moat_unlisted gauge"), helped)
        XCTAssertTrue(helped.hasSuffix("moat_unlisted 1\n"), helped)
    }

    func testHeadParsing() {
        XCTAssertNil(MetricsHTTPHandler.endOfHead(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)))
        XCTAssertEqual(MetricsHTTPHandler.endOfHead(Array("GET / HTTP/1.1\r\n\r\n".utf8)), 14)
    }
}
