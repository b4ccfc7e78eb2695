import MoatFuzzing

/// The in-memory daemon, built on the first input and rebuilt now and then.
let fuzzer = RequestFuzzer()

/// libFuzzer's entry point: one request through `RequestFuzzer`; a broken
/// invariant aborts, which libFuzzer records as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzHarness.run(data, size) { bytes throws(FuzzViolation) in try fuzzer.run(bytes) }
}
