import MoatFuzzing

/// libFuzzer's entry point: one input through `UserAgentFuzzer`; a broken
/// invariant aborts, which libFuzzer records as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzHarness.run(data, size) { bytes throws(FuzzViolation) in try UserAgentFuzzer.run(bytes) }
}
