// swift-tools-version: 6.0
// The code generators of Moat: `protoc-gen-moat` (service descriptors, server
// protocols and typed clients) and, from the same package graph,
// swift-protobuf's `protoc-gen-swift` (messages). Built by scripts/generate.
import PackageDescription

let package = Package(
    name: "moat-codegen",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "protoc-gen-moat", targets: ["protoc-gen-moat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
    ],
    targets: [
        .executableTarget(
            name: "protoc-gen-moat",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "SwiftProtobufPluginLibrary", package: "swift-protobuf"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
