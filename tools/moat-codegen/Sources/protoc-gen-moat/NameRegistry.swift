import SwiftProtobufPluginLibrary

/// Swift names already taken in each module, so that a generated service type
/// or client accessor that would clash with a message, an enum or another
/// service is reported by the generator instead of by the compiler later.
struct NameRegistry {
    private var owners: [String: String] = [:]  // "module|name" -> what took it
    private let mappings: ProtoFileToModuleMappings

    init(files: [FileDescriptor], mappings: ProtoFileToModuleMappings) {
        self.mappings = mappings
        // Every file protoc told us about that lands in a module we generate
        // into: the files to generate and their transitive dependencies.
        var seen = Set<String>()
        var queue = files
        var all: [FileDescriptor] = []
        while !queue.isEmpty {
            let file = queue.removeFirst()
            guard seen.insert(file.name).inserted else { continue }
            all.append(file)
            queue += file.dependencies
        }
        for file in all {
            let namer = SwiftProtobufNamer(currentFile: file, protoFileToModuleMappings: mappings)
            for message in file.messages {
                _ = claim(
                    NamingUtils.trimBackticksIfAny(namer.relativeName(message: message)), in: file,
                    by: "message \(message.fullName) (\(file.name))")
            }
            for e in file.enums {
                _ = claim(
                    NamingUtils.trimBackticksIfAny(namer.relativeName(enum: e)), in: file,
                    by: "enum \(e.fullName) (\(file.name))")
            }
        }
    }

    func module(of file: FileDescriptor) -> String { mappings.moduleName(forFile: file) ?? "" }

    /// Takes `name` in the module of `file` for `owner`; returns the previous
    /// owner if it was taken.
    mutating func claim(_ name: String, in file: FileDescriptor, by owner: String) -> String? {
        let key = module(of: file) + "|" + name
        if let previous = owners[key] { return previous }
        owners[key] = owner
        return nil
    }
}

extension NamingUtils {
    static func trimBackticksIfAny(_ s: String) -> String {
        s.hasPrefix("`") && s.hasSuffix("`") && s.count >= 2 ? String(s.dropFirst().dropLast()) : s
    }
}
