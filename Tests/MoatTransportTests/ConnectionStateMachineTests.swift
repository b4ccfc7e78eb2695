import NIOCore
import XCTest

@testable import MoatTransport

/// The connection's state machine on its own: every decision of the
/// connection handler, with time passed in by hand.
final class ConnectionStateMachineTests: XCTestCase {
    typealias Machine = ConnectionStateMachine<Int, String>

    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func machine(maxInFlight: Int = 2, idle: TimeAmount = .seconds(300)) -> Machine {
        Machine(maxInFlight: maxInFlight, idleTimeout: idle, now: start)
    }

    func testFramesQueueBehindAFullWindowAndReadsWaitForAFreeSlot() {
        var state = machine(maxInFlight: 2)
        XCTAssertEqual(state.started(now: start), start + .seconds(300), "first idle check one timeout away")
        for frame in [1, 2] {
            guard case .process(let served) = state.frameReceived(frame, now: start) else {
                return XCTFail("frame \(frame) not served")
            }
            XCTAssertEqual(served, frame)
            XCTAssertEqual(state.admit(id: UInt64(frame)), .start)
            state.callStarted(id: UInt64(frame), "call \(frame)")
        }
        // The window is full: the next frame of the same read waits, and no
        // further read happens.
        guard case .none = state.frameReceived(3, now: start) else { return XCTFail("frame 3 served past the window") }
        XCTAssertEqual(Array(state.queued), [3])
        XCTAssertFalse(state.readRequested())
        XCTAssertTrue(state.readHeld)

        // A call ends: the queued frame takes its slot; reading stays held
        // while the window is full again.
        XCTAssertEqual(state.callEnded(id: 1), "call 1")
        XCTAssertEqual(state.nextQueuedFrame(), 3)
        state.callStarted(id: 3, "call 3")
        XCTAssertNil(state.nextQueuedFrame())
        XCTAssertEqual(state.resume(), .init(flush: false, read: false, close: false))

        // Another ends: now the held read is issued.
        XCTAssertEqual(state.callEnded(id: 2), "call 2")
        XCTAssertNil(state.nextQueuedFrame())
        XCTAssertEqual(state.resume(), .init(flush: false, read: true, close: false))
        XCTAssertFalse(state.readHeld)
        XCTAssertTrue(state.readRequested(), "one slot free: reads flow")
        XCTAssertNil(state.callEnded(id: 2), "a call ends once")
    }

    func testDuplicateIDsAreRefusedAndEndedIDsMayBeReused() {
        var state = machine()
        state.callStarted(id: 9, "first")
        XCTAssertEqual(state.admit(id: 9), .duplicateID)
        XCTAssertEqual(state.admit(id: 10), .start)
        _ = state.callEnded(id: 9)
        XCTAssertEqual(state.admit(id: 9), .start)
    }

    func testDrainRefusesNewCallsAndClosesWhenTheLastEnds() {
        var state = machine()
        state.callStarted(id: 1, "running")
        XCTAssertFalse(state.drain(), "a call is in flight: no close yet")
        XCTAssertEqual(state.admit(id: 2), .refuseDraining)
        XCTAssertEqual(state.admit(id: 1), .duplicateID, "a duplicate is still a protocol error")
        _ = state.callEnded(id: 1)
        XCTAssertEqual(state.resume(), .init(flush: false, read: false, close: true))
        XCTAssertTrue(state.closing)
        XCTAssertEqual(state.resume(), .init(), "closing: nothing more to do")
    }

    func testDrainWithNothingInFlightClosesAtOnce() {
        var state = machine()
        XCTAssertTrue(state.drain())
        XCTAssertFalse(state.drain(), "close is decided once")
    }

    func testHalfCloseClosesAfterTheQueuedFramesAreServed() {
        var state = machine(maxInFlight: 1)
        guard case .process = state.frameReceived(1, now: start) else { return XCTFail("frame 1 not served") }
        state.callStarted(id: 1, "one")
        _ = state.frameReceived(2, now: start)
        XCTAssertFalse(state.inputEnded(), "a call in flight and a frame queued")
        _ = state.callEnded(id: 1)
        XCTAssertEqual(state.nextQueuedFrame(), 2)
        state.callStarted(id: 2, "two")
        XCTAssertFalse(state.resume().close)
        _ = state.callEnded(id: 2)
        XCTAssertTrue(state.resume().close)
    }

    func testProtocolErrorHandsBackEveryCallOnceAndIgnoresLaterFrames() {
        var state = machine(maxInFlight: 1)
        state.callStarted(id: 1, "one")
        _ = state.frameReceived(2, now: start)
        XCTAssertEqual(state.protocolError(), ["one"])
        XCTAssertTrue(state.queued.isEmpty)
        XCTAssertNil(state.protocolError(), "only the first error is answered")
        guard case .none = state.frameReceived(3, now: start) else { return XCTFail("served a frame while closing") }
        XCTAssertTrue(state.queued.isEmpty, "nothing queued while closing")
        XCTAssertNil(state.nextQueuedFrame())
        XCTAssertEqual(state.idleCheck(now: start + .seconds(1000)), .none)
    }

    func testIdleChecks() {
        var state = machine(idle: .seconds(300))
        _ = state.started(now: start)
        // Activity at +100 s moves the idle deadline to +400 s.
        _ = state.frameReceived(1, now: start + .seconds(100))
        state.callStarted(id: 1, "one")
        XCTAssertEqual(state.idleCheck(now: start + .seconds(300)), .checkAgain(at: start + .seconds(400)))
        // Past the deadline but a call is in flight: look again in a tenth of the timeout.
        XCTAssertEqual(state.idleCheck(now: start + .seconds(400)), .checkAgain(at: start + .seconds(430)))
        _ = state.callEnded(id: 1)
        XCTAssertEqual(state.idleCheck(now: start + .seconds(430)), .close)
        XCTAssertTrue(state.closing)
        XCTAssertEqual(state.idleCheck(now: start + .seconds(460)), .none)
    }

    func testWritesOutsideAReadCycleAreFlushedWhenASlotFrees() {
        var state = machine()
        state.wrote(flushed: true)
        XCTAssertFalse(state.readComplete())
        state.wrote(flushed: false)
        XCTAssertTrue(state.readComplete(), "an unflushed fast-path answer is flushed with the read")
        XCTAssertFalse(state.readComplete())
        // A queued frame answered on the fast path after a call ended.
        state.wrote(flushed: false)
        XCTAssertEqual(state.resume(), .init(flush: true, read: false, close: false))
        XCTAssertFalse(state.needsFlush)
    }

    func testTearDownHandsBackEveryCall() {
        var state = machine(maxInFlight: 3)
        state.callStarted(id: 1, "one")
        state.callStarted(id: 2, "two")
        XCTAssertTrue(state.updateCall(id: 2) { $0 += " (task)" })
        XCTAssertFalse(state.updateCall(id: 3) { $0 += " (task)" }, "no such call")
        XCTAssertEqual(state.tearDown().sorted(), ["one", "two (task)"])
        XCTAssertTrue(state.inFlight.isEmpty)
    }
}
