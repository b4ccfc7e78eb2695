import MoatFuzzing

private let fuzzer = GRPCFuzzer()

/// libFuzzer's entry point: one client byte stream through `GRPCFuzzer`
/// (the gRPC pipeline on an in-memory channel and daemon); a broken
/// invariant aborts, which libFuzzer records as a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzHarness.run(data, size) { bytes throws(FuzzViolation) in try fuzzer.run(bytes) }
}
