@testable import MoatCore
import XCTest

@testable import MoatStore

/// Last-active flushes update their rows in one fixed order, so that two
/// instances flushing overlapping sessions on one PostgreSQL queue on the
/// row locks instead of deadlocking (a deadlock is only found after
/// `deadlock_timeout`, and a revoking write on one of the rows waits
/// behind it).
final class TouchLockOrderTests: XCTestCase {
    func testTouchesAreUpdatedByTenantThenSessionWhateverTheirOrder() {
        let tenants = (0..<3).map { _ in TenantID.random() }
        let touches = (0..<60).map { index in
            SessionCache.Touch(tenantID: tenants[index % 3], sessionID: .random(), at: Timestamp(milliseconds: Int64(index)))
        }
        let key = { (touch: SessionCache.Touch) in [touch.tenantID.rawValue, touch.sessionID.rawValue] }
        let expected = touches.map(key).sorted { $0.lexicographicallyPrecedes($1) }
        for shuffled in [touches, touches.reversed(), touches.shuffled()] {
            let ordered = SQLiteAccountWriter.lockOrder(Array(shuffled))
            XCTAssertEqual(ordered.map(key), expected)
            XCTAssertEqual(Set(ordered.map(\.sessionID)), Set(touches.map(\.sessionID)), "no touch is lost")
        }
    }
}
