import Foundation
import SwiftProtobufPluginLibrary

/// The plugin's parameters.
struct GeneratorOptions {
    enum FileNaming {
        case fullPath, pathToUnderscores, dropPath

        init?(flag: String) {
            switch flag.lowercased() {
            case "fullpath", "full_path": self = .fullPath
            case "pathtounderscores", "path_to_underscores": self = .pathToUnderscores
            case "droppath", "drop_path": self = .dropPath
            default: return nil
            }
        }
    }

    /// What to write: Swift service code (the default) or, with
    /// `Language=C`, the typed C stubs `moat_stubs.h` and `moat_stubs.c`.
    enum Language { case swift, c }

    var fileNaming: FileNaming = .fullPath
    var language: Language = .swift
    var moduleMappings = ProtoFileToModuleMappings()

    init(parameter: any CodeGeneratorParameter) throws {
        for pair in parameter.parsedPairs {
            switch pair.key {
            case "FileNaming":
                guard let naming = FileNaming(flag: pair.value) else {
                    throw GenerationError("invalid value '\(pair.value)' for FileNaming")
                }
                fileNaming = naming
            case "Language":
                switch pair.value.lowercased() {
                case "swift": language = .swift
                case "c": language = .c
                default: throw GenerationError("invalid value '\(pair.value)' for Language (swift or c)")
                }
            case "ProtoPathModuleMappings":
                guard !pair.value.isEmpty else { continue }
                do {
                    moduleMappings = try ProtoFileToModuleMappings(path: pair.value)
                } catch {
                    throw GenerationError("ProtoPathModuleMappings=\(pair.value): \(error)")
                }
            default:
                throw GenerationError("unknown parameter '\(pair.key)'")
            }
        }
    }

    /// `moat/v1/health.proto` -> `moat/v1/health.moat.swift`,
    /// `moat_v1_health.moat.swift` or `health.moat.swift`, the way
    /// protoc-gen-swift names its `.pb.swift` files.
    func outputFilename(for protoPath: String) -> String {
        var dir = ""
        var base = protoPath
        if let slash = protoPath.lastIndex(of: "/") {
            dir = String(protoPath[...slash])
            base = String(protoPath[protoPath.index(after: slash)...])
        }
        if let dot = base.lastIndex(of: "."), dot != base.startIndex {
            base = String(base[..<dot])
        }
        let ext = ".moat.swift"
        switch fileNaming {
        case .fullPath: return dir + base + ext
        case .pathToUnderscores: return dir.replacingOccurrences(of: "/", with: "_") + base + ext
        case .dropPath: return base + ext
        }
    }
}
