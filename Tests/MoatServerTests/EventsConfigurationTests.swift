import Foundation
import XCTest

@testable import MoatServer

/// The `[events]` table.
final class EventsConfigurationTests: XCTestCase {
    func testDefaultsAndOverrides() throws {
        let defaults = try ConfigurationLoader.load(file: nil)
        XCTAssertEqual(defaults.events.retentionDays, 7)
        XCTAssertEqual(defaults.events.pruneIntervalSeconds, 300)
        XCTAssertEqual(defaults.events.maxPollWaitSeconds, 30)
        XCTAssertEqual(defaults.events.stream.retentionSeconds, 7 * 86400)
        XCTAssertEqual(defaults.events.stream.maxPollWaitMilliseconds, 30_000)

        let set = try ConfigurationLoader.load(
            file: nil,
            overrides: ["events.retention_days=2", "events.prune_interval_seconds=60", "events.max_poll_wait_seconds=5"])
        XCTAssertEqual(set.events.retentionDays, 2)
        XCTAssertEqual(set.events.pruneIntervalSeconds, 60)
        XCTAssertEqual(set.events.stream.maxPollWaitMilliseconds, 5000)
        XCTAssertEqual(set.events.stream.retentionSeconds, 2 * 86400)
        XCTAssertTrue(ConfigurationLoader.render(set).contains("[events]\nretention_days = 2\n"))
    }

    func testBadValuesAndUnknownKeysNameTheKey() {
        for (override, key) in [
            ("events.prune_interval_seconds=1", "events.prune_interval_seconds"),
            ("events.max_poll_wait_seconds=-1", "events.max_poll_wait_seconds"),
            ("events.retention_days=99999", "events.retention_days"),
            ("events.retention=3", "events.retention"),
        ] {
            XCTAssertThrowsError(try ConfigurationLoader.load(file: nil, overrides: [override]), override) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
    }
}
