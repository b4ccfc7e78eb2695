import SwiftProtobufPluginLibrary

/// Writes the `.moat.swift` file of one .proto file.
struct FileEmitter {
    let file: FileDescriptor
    let options: GeneratorOptions
    let namer: SwiftProtobufNamer

    init(file: FileDescriptor, options: GeneratorOptions) {
        self.file = file
        self.options = options
        self.namer = SwiftProtobufNamer(currentFile: file, protoFileToModuleMappings: options.moduleMappings)
    }

    /// One rpc, checked and named.
    struct Method {
        let descriptor: MethodDescriptor
        /// The Swift name, escaped if needed: `signIn`.
        let swiftName: String
        let access: String
        let inputType: String
        let outputType: String
        /// Doc comment lines without the `///` prefix (`@access` removed).
        let doc: [String]
    }

    /// One service, checked and named.
    struct Service {
        let descriptor: ServiceDescriptor
        let enumName: String
        let protocolName: String
        let clientName: String
        let accessor: String
        let doc: [String]
        let methods: [Method]
    }

    func emit(registry: inout NameRegistry) -> (contents: String, problems: [String]) {
        var problems: [String] = []
        var services: [Service] = []
        var modules: Set<String> = ["MoatRPC"]
        let ownModule = registry.module(of: file)

        for service in file.services {
            var methods: [Method] = []
            var swiftNames: [String: String] = [:]
            for method in service.methods {
                let location = where_(method)
                if method.clientStreaming || method.serverStreaming {
                    let kind =
                        method.clientStreaming && method.serverStreaming
                        ? "bidirectional" : method.clientStreaming ? "client" : "server"
                    problems.append(
                        "\(location): rpc \(method.fullName) is \(kind) streaming; streaming is not supported (Moat rpcs are unary)"
                    )
                    continue
                }
                let (access, doc, accessProblem) = parseComment(method.protoSourceComments(commentPrefix: ""))
                if let accessProblem {
                    problems.append("\(location): rpc \(method.fullName): \(accessProblem)")
                    continue
                }
                let bare = Naming.lowerCamel(method.name)
                if bare == "all" {
                    problems.append(
                        "\(location): rpc \(method.fullName) would be named `all`, which is taken by the list of methods; rename the rpc"
                    )
                    continue
                }
                if !isValidSwiftIdentifier(bare) || ["self", "Self", "Type", "Protocol", "_"].contains(bare) {
                    problems.append("\(location): rpc \(method.fullName): `\(bare)` cannot be used as a Swift name")
                    continue
                }
                if let other = swiftNames[bare] {
                    problems.append(
                        "\(location): rpcs \(other) and \(method.name) of \(service.fullName) both map to the Swift name `\(bare)`"
                    )
                    continue
                }
                swiftNames[bare] = method.name
                for type in [method.inputType!, method.outputType!] {
                    let module = registry.module(of: type.file)
                    if module != ownModule { modules.insert(module) }
                }
                var methodDoc = doc
                if method.options.deprecated {
                    if !methodDoc.isEmpty { methodDoc.append("") }
                    methodDoc.append("NOTE: This rpc is marked deprecated in the .proto file.")
                }
                methods.append(
                    Method(
                        descriptor: method, swiftName: Naming.escaped(bare), access: access,
                        inputType: namer.fullName(message: method.inputType),
                        outputType: namer.fullName(message: method.outputType), doc: methodDoc))
            }

            let enumName = namer.typePrefix(forFile: file) + service.name
            guard isValidSwiftIdentifier(enumName), !Naming.keywords.contains(enumName),
                !swiftKeywordsReservedInParticularContexts.contains(enumName)
            else {
                problems.append(
                    "\(where_(service)): service \(service.fullName): `\(enumName)` cannot be used as a Swift type name")
                continue
            }
            let generated = Service(
                descriptor: service, enumName: enumName, protocolName: enumName + "Service",
                clientName: enumName + "Client", accessor: accessorName(service),
                doc: serviceDoc(service), methods: methods)
            for (name, role) in [
                (generated.enumName, "method descriptors"), (generated.protocolName, "server protocol"),
                (generated.clientName, "client"),
            ] {
                if let owner = registry.claim(name, in: file, by: "the \(role) of service \(service.fullName)") {
                    problems.append(
                        "\(where_(service)): service \(service.fullName): the Swift name `\(name)` of its \(role) is already taken by \(owner)"
                    )
                }
            }
            if ["call", "unary"].contains(generated.accessor) {
                problems.append(
                    "\(where_(service)): service \(service.fullName): its client accessor `\(generated.accessor)` would clash with a ClientTransport method"
                )
            } else if let owner = registry.claim(
                "ClientTransport." + generated.accessor, in: file, by: "service \(service.fullName)")
            {
                problems.append(
                    "\(where_(service)): service \(service.fullName): the client accessor `ClientTransport.\(generated.accessor)` is already taken by \(owner)"
                )
            }
            services.append(generated)
        }

        guard problems.isEmpty else { return ("", problems) }
        return (render(services: services, modules: modules.sorted()), [])
    }

    /// `ClientTransport.sessions` for Moat's own services; services of other
    /// packages (`grpc.health.v1.Health`) are qualified by their package,
    /// `ClientTransport.grpcHealthV1Health`, so they never take a Moat name.
    private func accessorName(_ service: ServiceDescriptor) -> String {
        if file.package == "moat" || file.package.hasPrefix("moat.") { return Naming.lowerCamel(service.name) }
        let qualified = String((namer.typePrefix(forFile: file) + service.name).filter { $0 != "_" })
        return Naming.lowerCamel(qualified)
    }

    // MARK: Comments

    /// Splits an rpc's comment into its `@access` level and the doc lines.
    private func parseComment(_ comment: String) -> (access: String, doc: [String], problem: String?) {
        var access: [String] = []
        var doc: [String] = []
        for line in lines(comment) {
            let trimmed = line.trimmingWhitespace()
            guard trimmed.hasPrefix("@access") else {
                doc.append(line)
                continue
            }
            let value = String(trimmed.dropFirst("@access".count))
            guard value.isEmpty || value.first!.isWhitespace else {
                doc.append(line)  // e.g. "@accessible", not ours
                continue
            }
            access.append(value.trimmingWhitespace())
        }
        let expected = "expected exactly one line `@access public|user|admin|admin_or_user` in its leading comment"
        guard access.count == 1 else {
            return ("", [], access.isEmpty ? "missing @access: \(expected)" : "more than one @access line: \(expected)")
        }
        guard Self.accessCases[access[0]] != nil else {
            let problem = access[0].isEmpty ? "no access level after @access" : "unknown access level '\(access[0])'"
            return ("", [], "\(problem): \(expected)")
        }
        return (Self.accessCases[access[0]] ?? access[0], trimBlankEnds(doc), nil)
    }

    /// `@access` values and the `MethodAccess` case each one emits.
    static let accessCases = [
        "public": "public", "user": "user", "admin": "admin", "admin_or_user": "adminOrUser",
    ]

    private func serviceDoc(_ service: ServiceDescriptor) -> [String] {
        var doc = trimBlankEnds(lines(service.protoSourceComments(commentPrefix: "")))
        if service.options.deprecated || file.options.deprecated {
            if !doc.isEmpty { doc.append("") }
            doc.append(
                service.options.deprecated
                    ? "NOTE: This service is marked deprecated in the .proto file."
                    : "NOTE: The whole .proto file of this service is marked deprecated.")
        }
        return doc
    }

    private func lines(_ text: String) -> [String] {
        var result = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if result.last == "" { result.removeLast() }
        return result
    }

    private func trimBlankEnds(_ lines: [String]) -> [String] {
        var lines = lines
        while let first = lines.first, first.trimmingWhitespace().isEmpty { lines.removeFirst() }
        while let last = lines.last, last.trimmingWhitespace().isEmpty { lines.removeLast() }
        return lines
    }

    /// `moat/v1/health.proto:12:3` for error messages.
    private func where_(_ item: some ProvidesSourceCodeLocation) -> String {
        guard let span = item.sourceCodeInfoLocation?.span, span.count >= 2 else { return file.name }
        return "\(file.name):\(span[0] + 1):\(span[1] + 1)"
    }

    // MARK: Rendering

    private func render(services: [Service], modules: [String]) -> String {
        var out = Printer()
        out.line("// DO NOT EDIT. Generated by protoc-gen-moat from \(file.name).")
        for module in modules { out.line("public import \(module)") }
        for service in services {
            renderDescriptors(service, &out)
            renderProtocol(service, &out)
            renderClient(service, &out)
        }
        return out.text
    }

    private func renderDescriptors(_ s: Service, _ out: inout Printer) {
        let name = s.descriptor.fullName
        out.blank()
        out.doc(["Method descriptors of `\(name)`."] + (s.doc.isEmpty ? [] : [""] + s.doc))
        out.open("public enum \(s.enumName) {")
        out.line("public static let serviceName = \(literal(name))")
        out.open("public enum Method {")
        for m in s.methods {
            out.doc(m.doc)
            out.line(
                "public static let \(m.swiftName) = MethodDescriptor(service: \(literal(name)), method: \(literal(m.descriptor.name)), access: .\(m.access))"
            )
        }
        out.line("public static let all: [MethodDescriptor] = [\(s.methods.map(\.swiftName).joined(separator: ", "))]")
        out.close("}")
        out.close("}")
    }

    private func renderProtocol(_ s: Service, _ out: inout Printer) {
        out.blank()
        out.doc(
            ["Server side of `\(s.descriptor.fullName)`: implement this and register it with a `Router`."]
                + (s.doc.isEmpty ? [] : [""] + s.doc))
        out.open("public protocol \(s.protocolName): RPCService {")
        for m in s.methods {
            out.doc(m.doc)
            out.line(
                "func \(m.swiftName)(request: \(m.inputType), context: RequestContext) async throws -> \(m.outputType)")
        }
        out.close("}")
        out.blank()
        out.open("extension \(s.protocolName) {")
        out.open("public var methods: [ServerMethod] {")
        if s.methods.isEmpty {
            out.line("[]")
        } else {
            out.open("[")
            for m in s.methods {
                out.open(".unary(\(s.enumName).Method.\(m.swiftName)) { (request: \(m.inputType), context) in")
                out.line("try await self.\(m.swiftName)(request: request, context: context)")
                out.close("},")
            }
            out.close("]")
        }
        out.close("}")
        out.close("}")
    }

    private func renderClient(_ s: Service, _ out: inout Printer) {
        let name = s.descriptor.fullName
        out.blank()
        out.doc(["Typed client of `\(name)`."] + (s.doc.isEmpty ? [] : [""] + s.doc))
        out.open("public struct \(s.clientName): Sendable {")
        out.line("public let transport: any ClientTransport")
        out.line("public init(transport: any ClientTransport) { self.transport = transport }")
        for m in s.methods {
            out.doc(m.doc)
            if m.descriptor.options.deprecated {
                out.line("@available(*, deprecated)")
            }
            out.open(
                "public func \(m.swiftName)(_ request: \(m.inputType) = .init(), options: CallOptions = .init()) async throws -> \(m.outputType) {"
            )
            out.line("try await transport.unary(\(s.enumName).Method.\(m.swiftName), request: request, options: options)")
            out.close("}")
        }
        out.close("}")
        out.blank()
        out.open("extension ClientTransport {")
        out.doc(["The `\(name)` client on this transport."])
        out.line("public var \(Naming.escaped(s.accessor)): \(s.clientName) { .init(transport: self) }")
        out.close("}")
    }

    /// A Swift string literal (names are protobuf identifiers, but be safe).
    private func literal(_ s: String) -> String {
        var result = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}

/// Builds indented source text, four spaces a level, `\n` line ends, no
/// trailing whitespace.
struct Printer {
    private(set) var text = ""
    private var indent = 0

    mutating func line(_ s: String) {
        text += s.isEmpty ? "\n" : String(repeating: "    ", count: indent) + s + "\n"
    }
    mutating func blank() { text += "\n" }
    mutating func open(_ s: String) {
        line(s)
        indent += 1
    }
    mutating func close(_ s: String) {
        indent -= 1
        line(s)
    }
    /// Re-indents after a `close` that also opened (`} else {`).
    mutating func indentIn() { indent += 1 }
    /// A `///` doc comment; proto comment lines usually start with a space.
    mutating func doc(_ lines: [String]) {
        for l in lines {
            let body = l.trimmingTrailingWhitespace()
            line(body.isEmpty ? "///" : (body.first == " " ? "///" + body : "/// " + body))
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        String(trimmingTrailingWhitespace().drop(while: { $0.isWhitespace }))
    }
    func trimmingTrailingWhitespace() -> String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
