// swift-tools-version: 6.0
// libFuzzer harnesses for Moat: one small executable per target, each only
// an LLVMFuzzerTestOneInput over a MoatFuzzing entry point. Built by
// scripts/fuzz with `--sanitize fuzzer --sanitize address` (libFuzzer
// supplies main), scratch path .build-fuzz.
import PackageDescription

let harness = [SwiftSetting.unsafeFlags(["-parse-as-library"])]

let package = Package(
    name: "MoatFuzz",
    dependencies: [.package(name: "Moat", path: "..")],
    targets: [
        .executableTarget(
            name: "fuzz-frames", dependencies: [.product(name: "MoatFuzzing", package: "Moat")], swiftSettings: harness),
        .executableTarget(
            name: "fuzz-requests", dependencies: [.product(name: "MoatFuzzing", package: "Moat")], swiftSettings: harness),
        .executableTarget(
            name: "fuzz-config", dependencies: [.product(name: "MoatFuzzing", package: "Moat")], swiftSettings: harness),
        .executableTarget(
            name: "fuzz-user-agent", dependencies: [.product(name: "MoatFuzzing", package: "Moat")],
            swiftSettings: harness),
        .executableTarget(
            name: "fuzz-grpc", dependencies: [.product(name: "MoatFuzzing", package: "Moat")], swiftSettings: harness),
    ],
    swiftLanguageModes: [.v6]
)
