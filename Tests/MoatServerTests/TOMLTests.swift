import Testing

@testable import MoatServer

// MARK: - Helpers

private func parse(_ text: String) throws(TOMLError) -> [String: TOMLValue] {
    try TOMLDocument.parse(text)
}

/// The error `text` fails with, or `nil` if it parses.
private func parseError(_ text: String) -> TOMLError? {
    do {
        _ = try TOMLDocument.parse(text)
        return nil
    } catch {
        return error
    }
}

/// Asserts `text` fails on `line` with a message containing `fragment`, and that
/// the description starts with "line N".
private func expectFailure(
    _ text: String, line: Int, _ fragment: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let error = parseError(text) else {
        Issue.record("expected a parse error containing \"\(fragment)\"", sourceLocation: sourceLocation)
        return
    }
    #expect(error.line == line, "\(error)", sourceLocation: sourceLocation)
    #expect(error.description.hasPrefix("line \(line),"), "\(error)", sourceLocation: sourceLocation)
    #expect(error.message.contains(fragment), "\(error)", sourceLocation: sourceLocation)
}

/// The `TOMLError` a lookup throws, or `nil` if it succeeds. (Closures infer
/// untyped throws, hence the cast.)
private func failure(_ body: () throws -> Void) -> TOMLError? {
    do {
        try body()
        return nil
    } catch {
        return error as? TOMLError
    }
}

// MARK: - Features

@Suite("TOML parsing")
struct TOMLParsingTests {
    @Test func emptyDocumentsAndComments() throws {
        #expect(try parse("") == [:])
        #expect(try parse("\n\n  \t\n") == [:])
        #expect(try parse("# only a comment") == [:])
        let doc = try parse("""
            # leading comment
            a = 1 # trailing comment
              # indented comment
            b = "# not a comment" # but this is

            """)
        #expect(doc == ["a": .integer(1), "b": .string("# not a comment")])
    }

    @Test func crlfLineEndingsAndByteOrderMark() throws {
        let doc = try parse("\u{FEFF}a = 1\r\n[t]\r\nb = \"x\" # c\r\n")
        #expect(doc == ["a": .integer(1), "t": .table(["b": .string("x")])])
    }

    @Test func bareQuotedAndDottedKeys() throws {
        let doc = try parse("""
            bare_key-1 = 1
            1234 = 2
            "quoted key" = 3
            'literal "key"' = 4
            "" = 5
            "esc\\u00e9" = 6
            physical.color = "orange"
            physical . shape = "round"
            site."google.com" = true
            3.14 = "pi"
            """)
        #expect(doc["bare_key-1"] == .integer(1))
        #expect(doc["1234"] == .integer(2))
        #expect(doc["quoted key"] == .integer(3))
        #expect(doc["literal \"key\""] == .integer(4))
        #expect(doc[""] == .integer(5))
        #expect(doc["escé"] == .integer(6))
        #expect(doc["physical"] == .table(["color": .string("orange"), "shape": .string("round")]))
        #expect(doc["site"] == .table(["google.com": .boolean(true)]))
        #expect(doc["3"] == .table(["14": .string("pi")]))
    }

    @Test func tablesAndDottedHeaders() throws {
        let doc = try parse("""
            top = 0
            [server]
            port = 1

            [server.limits]
            frames = 2
            [ dog . "tater.man" ]
            type = "pug"
            [a.b.c]
            x = 1
            [a]          # defining an implicitly created table is allowed once
            y = 2
            """)
        #expect(doc["top"] == .integer(0))
        #expect(doc["server"] == .table(["port": .integer(1), "limits": .table(["frames": .integer(2)])]))
        #expect(doc["dog"] == .table(["tater.man": .table(["type": .string("pug")])]))
        #expect(doc["a"] == .table(["y": .integer(2), "b": .table(["c": .table(["x": .integer(1)])])]))
    }

    @Test func headersMayAddSubTablesToDottedTables() throws {
        let doc = try parse("""
            [fruit]
            apple.color = "red"
            apple.taste.sweet = true
            [fruit.apple.texture]
            smooth = true
            """)
        #expect(doc["fruit"] == .table([
            "apple": .table([
                "color": .string("red"),
                "taste": .table(["sweet": .boolean(true)]),
                "texture": .table(["smooth": .boolean(true)]),
            ]),
        ]))
    }

    @Test func arraysOfTables() throws {
        let doc = try parse("""
            [[fruits]]
            name = "apple"
            [fruits.physical]
            color = "red"
            [[fruits.varieties]]
            name = "red delicious"
            [[fruits.varieties]]
            name = "granny smith"

            [[fruits]]
            name = "banana"
            [[fruits.varieties]]
            name = "plantain"

            [[empty]]
            [[empty]]
            """)
        #expect(doc["fruits"] == .array([
            .table([
                "name": .string("apple"),
                "physical": .table(["color": .string("red")]),
                "varieties": .array([
                    .table(["name": .string("red delicious")]),
                    .table(["name": .string("granny smith")]),
                ]),
            ]),
            .table([
                "name": .string("banana"),
                "varieties": .array([.table(["name": .string("plantain")])]),
            ]),
        ]))
        #expect(doc["empty"] == .array([.table([:]), .table([:])]))
    }

    @Test func basicStringEscapes() throws {
        let doc = try parse(#"""
            s = "tab\there \"quoted\" back\\slash\nnew\bb\ff\rr"
            u = "\u00E9\u4E2D\U0001F600"
            raw = "héllo wörld ✓"
            empty = ""
            """#)
        #expect(doc["s"] == .string("tab\there \"quoted\" back\\slash\nnew\u{8}b\u{C}f\rr"))
        #expect(doc["u"] == .string("é中😀"))
        #expect(doc["raw"] == .string("héllo wörld ✓"))
        #expect(doc["empty"] == .string(""))
    }

    @Test func literalStrings() throws {
        let doc = try parse(#"""
            path = 'C:\Users\nodejs\templates'
            regex = '<\i\c*\s*>'
            quoted = 'Tom "Dubs" Preston'
            empty = ''
            """#)
        #expect(doc["path"] == .string(#"C:\Users\nodejs\templates"#))
        #expect(doc["regex"] == .string(#"<\i\c*\s*>"#))
        #expect(doc["quoted"] == .string(#"Tom "Dubs" Preston"#))
        #expect(doc["empty"] == .string(""))
    }

    @Test func multiLineBasicStrings() throws {
        let doc = try parse(#"""
            a = """
            Roses are red
            Violets are blue"""
            b = """\
                The quick brown \
                fox jumps over \
                the lazy dog.\
                """
            c = """Here are two quotation marks: "". Simple enough."""
            d = """Here are three: ""\"."""
            e = """"This," she said, "is just a pointless statement.""""
            f = """tab\tand \u00E9"""
            g = """line one   \
                  \
              line two"""
            """#)
        #expect(doc["a"] == .string("Roses are red\nViolets are blue"))
        #expect(doc["b"] == .string("The quick brown fox jumps over the lazy dog."))
        #expect(doc["c"] == .string(#"Here are two quotation marks: "". Simple enough."#))
        #expect(doc["d"] == .string(#"Here are three: """."#))
        #expect(doc["e"] == .string(#""This," she said, "is just a pointless statement.""#))
        #expect(doc["f"] == .string("tab\tand é"))
        #expect(doc["g"] == .string("line one   line two"))
    }

    @Test func multiLineStringsNormalizeCRLF() throws {
        let doc = try parse("a = \"\"\"\r\none\r\ntwo\"\"\"\r\nb = '''\r\nx\r\ny'''\r\n")
        #expect(doc["a"] == .string("one\ntwo"))
        #expect(doc["b"] == .string("x\ny"))
    }

    @Test func multiLineLiteralStrings() throws {
        let doc = try parse(#"""
            regex2 = '''I [dw]on't need \d{2} apples'''
            lines = '''
            The first newline is
            trimmed in raw strings.
               All other whitespace
               is preserved. \
            '''
            quotes = ''''That,' she said, 'is still pointless.''''
            """#)
        #expect(doc["regex2"] == .string(#"I [dw]on't need \d{2} apples"#))
        #expect(doc["lines"] == .string("The first newline is\ntrimmed in raw strings.\n   All other whitespace\n   is preserved. \\\n"))
        #expect(doc["quotes"] == .string("'That,' she said, 'is still pointless.'"))
    }

    @Test func integers() throws {
        let doc = try parse("""
            a = +99
            b = 42
            c = 0
            d = -17
            e = 1_000
            f = 5_349_221
            g = 1_2_3_4_5
            h = 0xDEADBEEF
            i = 0xdead_beef
            j = 0o01234567
            k = 0o755
            l = 0b11010110
            m = 9223372036854775807
            n = -9223372036854775808
            o = +0
            p = -0
            q = 0x7FFFFFFFFFFFFFFF
            """)
        #expect(doc["a"] == .integer(99))
        #expect(doc["b"] == .integer(42))
        #expect(doc["c"] == .integer(0))
        #expect(doc["d"] == .integer(-17))
        #expect(doc["e"] == .integer(1000))
        #expect(doc["f"] == .integer(5_349_221))
        #expect(doc["g"] == .integer(12345))
        #expect(doc["h"] == .integer(0xDEADBEEF))
        #expect(doc["i"] == .integer(0xDEADBEEF))
        #expect(doc["j"] == .integer(0o1234567))
        #expect(doc["k"] == .integer(0o755))
        #expect(doc["l"] == .integer(0b11010110))
        #expect(doc["m"] == .integer(.max))
        #expect(doc["n"] == .integer(.min))
        #expect(doc["o"] == .integer(0))
        #expect(doc["p"] == .integer(0))
        #expect(doc["q"] == .integer(.max))
    }

    @Test func floats() throws {
        let doc = try parse("""
            a = +1.0
            b = 3.1415
            c = -0.01
            d = 5e+22
            e = 1e06
            f = -2E-2
            g = 6.626e-34
            h = 224_617.445_991_228
            i = inf
            j = +inf
            k = -inf
            l = nan
            m = -nan
            n = 0.0
            o = -0.0
            p = 0e0
            """)
        #expect(doc["a"] == .float(1.0))
        #expect(doc["b"] == .float(3.1415))
        #expect(doc["c"] == .float(-0.01))
        #expect(doc["d"] == .float(5e22))
        #expect(doc["e"] == .float(1e6))
        #expect(doc["f"] == .float(-0.02))
        #expect(doc["g"] == .float(6.626e-34))
        #expect(doc["h"] == .float(224_617.445_991_228))
        #expect(doc["i"] == .float(.infinity))
        #expect(doc["j"] == .float(.infinity))
        #expect(doc["k"] == .float(-.infinity))
        guard case .float(let nan) = doc["l"], case .float(let negativeNaN) = doc["m"] else {
            Issue.record("nan did not parse as a float")
            return
        }
        #expect(nan.isNaN && negativeNaN.isNaN)
        #expect(doc["n"] == .float(0))
        guard case .float(let negativeZero) = doc["o"] else {
            Issue.record("-0.0 did not parse as a float")
            return
        }
        #expect(negativeZero == 0 && negativeZero.sign == .minus)
        #expect(doc["p"] == .float(0))
    }

    @Test func booleans() throws {
        #expect(try parse("t = true\nf = false") == ["t": .boolean(true), "f": .boolean(false)])
    }

    @Test func arrays() throws {
        let doc = try parse("""
            integers = [ 1, 2, 3 ]
            colors = [ "red", 'yellow', \"\"\"green\"\"\" ]
            nested = [ [ 1, 2 ], [3, 4, 5], [] ]
            mixed = [ 0.1, 2, "three", true, { x = 1 } ]
            empty = []
            multi = [
              1,   # one
              2,
              # a whole-line comment
              3,   # trailing comma next
            ]
            tables = [ { name = "a" }, { name = "b" } ]
            """)
        #expect(doc["integers"] == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(doc["colors"] == .array([.string("red"), .string("yellow"), .string("green")]))
        #expect(doc["nested"] == .array([.array([.integer(1), .integer(2)]), .array([.integer(3), .integer(4), .integer(5)]), .array([])]))
        #expect(doc["mixed"] == .array([.float(0.1), .integer(2), .string("three"), .boolean(true), .table(["x": .integer(1)])]))
        #expect(doc["empty"] == .array([]))
        #expect(doc["multi"] == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(doc["tables"] == .array([.table(["name": .string("a")]), .table(["name": .string("b")])]))
    }

    @Test func inlineTables() throws {
        let doc = try parse("""
            name = { first = "Tom", last = "Preston-Werner" }
            point = {x=1,y=2}
            animal = { type.name = "pug", type.legs = 4 }
            nested = { a = { b = { c = [1, 2] } } }
            empty = {}
            spaced = {   }
            multi_line_array_inside = { list = [
              1,
              2,
            ] }
            """)
        #expect(doc["name"] == .table(["first": .string("Tom"), "last": .string("Preston-Werner")]))
        #expect(doc["point"] == .table(["x": .integer(1), "y": .integer(2)]))
        #expect(doc["animal"] == .table(["type": .table(["name": .string("pug"), "legs": .integer(4)])]))
        #expect(doc["nested"] == .table(["a": .table(["b": .table(["c": .array([.integer(1), .integer(2)])])])]))
        #expect(doc["empty"] == .table([:]))
        #expect(doc["spaced"] == .table([:]))
        #expect(doc["multi_line_array_inside"] == .table(["list": .array([.integer(1), .integer(2)])]))
    }

    @Test func errorDescriptionFormat() {
        let error = TOMLError(line: 7, column: 3, message: "expected '=' after key 'port'")
        #expect(error.description == "line 7, column 3: expected '=' after key 'port'")
        #expect(TOMLError(line: 0, column: 0, message: "m").description == "m")
    }

    @Test func columnsCountCharactersNotBytes() {
        let error = parseError("[t]\n\"é\" = 1\n\"é\" = 2")
        #expect(error?.line == 3)
        #expect(error?.column == 1)
        let garbage = parseError("ké = 1")
        #expect(garbage?.line == 1)
        #expect(garbage?.column == 2)
    }
}

// MARK: - Errors

@Suite("TOML errors")
struct TOMLErrorTests {
    @Test func keyValueSyntax() {
        expectFailure("a = 1\n\nport 8080", line: 3, "expected '=' after key 'port'")
        expectFailure("a = 1\nport", line: 2, "expected '=' after key 'port'")
        expectFailure("x = 1\n= 2", line: 2, "expected a key")
        expectFailure("a =\n", line: 1, "expected a value")
        expectFailure("a = ", line: 1, "expected a value")
        expectFailure("a.= 1", line: 1, "expected a key")
        expectFailure("\"\"\"key\"\"\" = 1", line: 1, "multi-line strings cannot be used as keys")
        expectFailure("a = 1\nb = hello", line: 2, "invalid value 'hello'; strings must be quoted")
        expectFailure("a = no", line: 1, "invalid value 'no'; strings must be quoted")
        expectFailure("a = tru", line: 1, "invalid value 'tru'")
        expectFailure("a = 1\n\nb = 2 3", line: 3, "unexpected '3' after value")
        expectFailure("a = \"x\" y", line: 1, "unexpected 'y' after value")
        expectFailure("a = truex", line: 1, "unexpected 'x' after value")
        expectFailure("a = 1 b = 2", line: 1, "unexpected 'b' after value")
        expectFailure("a = 1\rb = 2", line: 1, "carriage return")
    }

    @Test func duplicateKeys() {
        expectFailure("a = 1\nb = 2\na = 3", line: 3, "duplicate key 'a' (first defined at line 1)")
        expectFailure("[t]\nx = 1\nx = 2", line: 3, "duplicate key 't.x'")
        expectFailure("a.b = 1\na.b = 2", line: 2, "duplicate key 'a.b'")
        expectFailure("a = 1\na.b = 2", line: 2, "cannot use 'a' as a table: it is already an integer")
        expectFailure("a.b = 1\na = 2", line: 2, "duplicate key 'a'")
        expectFailure("name = 'x'\n\"name\" = 'y'", line: 2, "duplicate key 'name'")
        expectFailure("p = { x = 1, x = 2 }", line: 1, "duplicate key 'p.x'")
    }

    @Test func tableRedefinition() {
        expectFailure("[a]\nx = 1\n\n[a]\ny = 2", line: 4, "table [a] is defined more than once (first defined at line 1)")
        expectFailure("[a.b]\n[a]\n[a]", line: 3, "table [a] is defined more than once")
        expectFailure("[a]\nb.c = 1\n[a.b]", line: 3, "table [a.b] was already defined with dotted keys")
        expectFailure("[a]\nb = 1\n[a.b]", line: 3, "cannot define table [a.b]: 'a.b' is already an integer")
        expectFailure("[a.b.c]\nz = 9\n[a]\nb.c.t = 1", line: 4, "table 'a.b' is defined by a header")
        expectFailure("[a.b]\nx = 1\n[a]\nb.y = 2", line: 4, "cannot add 'b.y' with a dotted key")
        expectFailure("a = { x = 1 }\n[a]", line: 2, "already an inline table")
        expectFailure("a = { x = 1 }\na.y = 2", line: 2, "already an inline table")
        expectFailure("a = { x = 1 }\n[a.b]", line: 2, "already an inline table")
        expectFailure("p = { x = { y = 1 }, x.z = 2 }", line: 1, "already an inline table")
    }

    @Test func arrayOfTablesConflicts() {
        expectFailure("[[a]]\n[a]", line: 2, "already an array of tables")
        expectFailure("[a]\n[[a]]", line: 2, "cannot define array of tables [[a]]: 'a' is already a table")
        expectFailure("a = [1]\n[[a]]", line: 2, "already an array")
        expectFailure("[a.b]\n[[a]]", line: 2, "already a table")
        expectFailure("[[a]]\nb.c = 1\n[[a]]\nb.c = 1\nb.c = 2", line: 5, "duplicate key 'a[1].b.c'")
        expectFailure("[[a]]\n[a.b]\n[a.b]", line: 3, "table [a.b] is defined more than once")
        expectFailure("[[a", line: 1, "expected ']]' to close array of tables header")
        expectFailure("[[a] ]", line: 1, "expected ']]'")
    }

    @Test func headerSyntax() {
        expectFailure("x = 1\n[]", line: 2, "expected a key in table header")
        expectFailure("[a", line: 1, "expected ']' to close table header [a]")
        expectFailure("[a b]", line: 1, "expected ']' to close table header")
        expectFailure("\n[a] x = 1", line: 2, "unexpected 'x' after table header")
        expectFailure("[a.]", line: 1, "expected a key")
    }

    @Test func stringErrors() {
        expectFailure("a = 1\nb = \"bad \\q escape\"", line: 2, "invalid escape sequence '\\q'")
        expectFailure("b = \"\\x41\"", line: 1, "invalid escape sequence '\\x'")
        expectFailure("b = \"trailing \\ \"", line: 1, "invalid escape")
        expectFailure("b = \"\\u12\"", line: 1, "needs 4 hexadecimal digits")
        expectFailure("b = \"\\U0001F60\"", line: 1, "needs 8 hexadecimal digits")
        expectFailure("b = \"\\uD800\"", line: 1, "not a Unicode scalar value")
        expectFailure("b = \"\\U00110000\"", line: 1, "not a Unicode scalar value")
        expectFailure("a = 1\nb = \"no end\nc = 2", line: 2, "unterminated string")
        expectFailure("b = \"no end", line: 1, "unterminated string")
        expectFailure("b = 'no end\n", line: 1, "unterminated literal string")
        expectFailure("a = 1\nb = \"\"\"\nline\nline", line: 2, "unterminated multi-line string")
        expectFailure("b = '''\nnever closed", line: 1, "unterminated multi-line string")
        expectFailure("b = \"bell \u{07}\"", line: 1, "control character U+0007 must be escaped")
        expectFailure("b = 'nul \u{00}'", line: 1, "control character U+0000")
        expectFailure("b = \"\"\"a\u{7F}\"\"\"", line: 1, "control character U+007F")
        expectFailure("b = \"\"\"\na\\ b\"\"\"", line: 2, "invalid escape")
        expectFailure("b = \"\"\"a\"\"\"\"\"\"", line: 1, "unexpected '\"' after value")
        expectFailure("# bell \u{07} in comment", line: 1, "not allowed in a comment")
    }

    @Test func integerErrors() {
        expectFailure("a = 1\nb = 9223372036854775808", line: 2, "integer '9223372036854775808' is out of range")
        expectFailure("b = -9223372036854775809", line: 1, "out of range")
        expectFailure("b = 0x1_0000_0000_0000_0000", line: 1, "out of range")
        expectFailure("b = 0x8000000000000000", line: 1, "out of range")
        expectFailure("b = 0123", line: 1, "leading zeros are not allowed")
        expectFailure("b = -01", line: 1, "leading zeros")
        expectFailure("b = 1__000", line: 1, "invalid number '1__000'")
        expectFailure("b = 1000_", line: 1, "invalid number")
        expectFailure("b = +0x10", line: 1, "a sign is not allowed")
        expectFailure("b = 0b102", line: 1, "invalid integer '0b102'")
        expectFailure("b = 0x", line: 1, "invalid integer")
        expectFailure("b = 0o8", line: 1, "invalid integer")
        expectFailure("b = 0x_1", line: 1, "invalid integer")
        expectFailure("b = 0XFF", line: 1, "invalid number")
        expectFailure("b = 12abc", line: 1, "invalid number '12abc'")
        expectFailure("b = +", line: 1, "invalid number '+'")
        expectFailure("b = --1", line: 1, "invalid number")
    }

    @Test func floatErrors() {
        expectFailure("a = 1\nb = 1.", line: 2, "a digit must follow the decimal point")
        expectFailure("b = 1.e5", line: 1, "a digit must follow the decimal point")
        expectFailure("b = .5", line: 1, "expected a value, found '.'")
        expectFailure("b = 1e", line: 1, "bad exponent")
        expectFailure("b = 1e_5", line: 1, "bad exponent")
        expectFailure("b = 1.5.6", line: 1, "invalid number")
        expectFailure("b = 1e400", line: 1, "float '1e400' is out of range")
        expectFailure("b = 01.5", line: 1, "leading zeros")
        expectFailure("b = infinity", line: 1, "invalid value 'infinity'")
    }

    @Test func datesAreRejectedClearly() {
        expectFailure("a = 1\nwhen = 1979-05-27T07:32:00Z", line: 2, "dates and times are not supported")
        expectFailure("when = 1979-05-27", line: 1, "dates and times are not supported")
        expectFailure("when = 07:32:00", line: 1, "dates and times are not supported")
    }

    @Test func arrayAndInlineTableErrors() {
        expectFailure("a = [1, 2", line: 1, "unterminated array (opened at line 1, column 5)")
        expectFailure("a = [\n1,\n2\n", line: 4, "unterminated array (opened at line 1")
        expectFailure("a = [1 2]", line: 1, "expected ',' or ']' after array element, found '2'")
        expectFailure("a = [1,,2]", line: 1, "expected a value, found ','")
        expectFailure("a = [\n  1,\n  oops,\n]", line: 3, "invalid value 'oops'")
        expectFailure("a = { x = 1, }", line: 1, "trailing comma is not allowed in an inline table")
        expectFailure("a = { x = 1\n}", line: 1, "inline tables must be on one line")
        expectFailure("a = {\nx = 1 }", line: 1, "inline tables must be on one line")
        expectFailure("a = { x = 1 y = 2 }", line: 1, "expected ',' or '}' in inline table, found 'y'")
        expectFailure("a = { x }", line: 1, "expected '=' after key 'x'")
        expectFailure("a = { x = 1 # no }", line: 1, "expected ',' or '}'")
    }

    @Test func nestingIsBoundedNotACrash() {
        let deepArray = "a = " + String(repeating: "[", count: 100_000)
        expectFailure(deepArray, line: 1, "nesting is too deep")
        let deepInline = "a = " + String(repeating: "{ b = ", count: 50_000)
        expectFailure(deepInline, line: 1, "nesting is too deep")
        let longKey = Array(repeating: "k", count: 10_000).joined(separator: ".") + " = 1"
        expectFailure(longKey, line: 1, "key has too many parts")
        let deepHeader = "[" + Array(repeating: "t", count: 10_000).joined(separator: ".") + "]"
        expectFailure(deepHeader, line: 1, "key has too many parts")
        // Within the limits, dotted keys in tables inside inline tables still nest.
        #expect(parseError("a = [[[[1]]]]\n[x.y.z]\nq.r.s = { t.u = [1] }") == nil)
    }

    @Test func arbitraryBytesNeverCrash() {
        // Every prefix and many mutations of a realistic document: each must
        // either parse or throw, never trap.
        let sample = Array(TOMLConfigSampleTests.sample.utf8)
        for end in 0...sample.count {
            _ = parseError(String(decoding: sample[0..<end], as: UTF8.self))
        }
        var rng = SplitMix64(seed: 0x5EED)
        let interesting: [UInt8] = Array("\"'[]{}=.,#\\\n\r\t 0x_+-e".utf8) + [0, 0x7F, 0xC3, 0xA9]
        for _ in 0..<1_500 {
            var bytes = sample
            for _ in 0..<Int(rng.next() % 4 + 1) {
                let index = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[index] = interesting[Int(rng.next() % UInt64(interesting.count))]
                case 1: bytes.remove(at: index)
                default: bytes.insert(interesting[Int(rng.next() % UInt64(interesting.count))], at: index)
                }
            }
            _ = parseError(String(decoding: bytes, as: UTF8.self))
        }
    }

    @Test func largeDocumentsStayLinear() throws {
        var text = "[big]\n"
        for i in 0..<20_000 { text += "key_\(i) = \(i)\n" }
        text += "wide = { " + (0..<5_000).map { "k\($0) = \($0)" }.joined(separator: ", ") + " }\n"
        let doc = try TOMLTable(parsing: text)
        let big = try #require(try doc.table("big"))
        #expect(big.values.count == 20_001)
        #expect(try big.int("key_19999") == 19_999)
        #expect(try big.int("wide.k4999") == 4_999)
        #expect(big.location(of: "wide.k4999")?.line == 20_002)
    }
}

/// A small deterministic generator for the mutation test.
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: - Typed lookups

@Suite("TOMLTable lookups")
struct TOMLTableTests {
    static let text = """
        name = "moat"
        workers = 4
        ratio = 0.5
        timeout = 30
        verbose = true
        tags = ["a", "b"]
        ports = [80, 443]
        mixed = ["a", 1]
        huge = 9223372036854775807

        [server]
        port = 70000
        socket = { path = "/run/moat.sock", mode = 0o660 }

        [[listeners]]
        name = "one"

        [[listeners]]
        name = "two"
        prot = 1
        """

    @Test func typedValues() throws {
        let table = try TOMLTable(parsing: Self.text)
        #expect(try table.string("name") == "moat")
        #expect(try table.int("workers") == 4)
        #expect(try table.double("ratio") == 0.5)
        #expect(try table.double("timeout") == 30)  // integers are accepted as doubles
        #expect(try table.bool("verbose") == true)
        #expect(try table.stringArray("tags") == ["a", "b"])
        #expect(try table.intArray("ports") == [80, 443])
        #expect(try table.string("server.socket.path") == "/run/moat.sock")
        #expect(try table.int("server.socket.mode") == 0o660)
        #expect(try table.value("verbose") == .boolean(true))
        #expect(table["workers"] == .integer(4))
        #expect(try table.int("huge") == Int.max)

        let socket = try #require(try table.table("server.socket"))
        #expect(socket.name == "server.socket")
        #expect(socket.keys == ["mode", "path"])
        #expect(try socket.string("path") == "/run/moat.sock")

        let listeners = try #require(try table.tableArray("listeners"))
        #expect(listeners.count == 2)
        #expect(try listeners.map { try $0.string("name") } == ["one", "two"])
        #expect(listeners[1].name == "listeners[1]")
    }

    @Test func absentKeysAreNil() throws {
        let table = try TOMLTable(parsing: Self.text)
        #expect(try table.string("missing") == nil)
        #expect(try table.int("server.missing") == nil)
        #expect(try table.table("nope.deeper") == nil)
        #expect(try table.stringArray("server.socket.nope") == nil)
        #expect(try table.int("port", in: 1...10) == nil)
    }

    @Test func wrongTypesNameTheKeyTypeAndLine() throws {
        let table = try TOMLTable(parsing: Self.text)
        let a = failure { _ = try table.int("name") }
        #expect(a?.description == "line 1, column 1: 'name' must be an integer, but it is a string")
        let b = failure { _ = try table.string("server.port") }
        #expect(b?.description == "line 12, column 1: 'server.port' must be a string, but it is an integer")
        let c = failure { _ = try table.bool("ratio") }
        #expect(c?.message == "'ratio' must be a boolean, but it is a float")
        let d = failure { _ = try table.stringArray("mixed") }
        #expect(d?.message == "'mixed' must be an array of strings, but element 1 is an integer")
        #expect(d?.line == 8)
        let e = failure { _ = try table.intArray("tags") }
        #expect(e?.message == "'tags' must be an array of integers, but element 0 is a string")
        let f = failure { _ = try table.double("verbose") }
        #expect(f?.message == "'verbose' must be a number, but it is a boolean")
        let g = failure { _ = try table.string("server.socket.path.deeper") }
        #expect(g?.message.hasPrefix("'server.socket.path' is a string, not a table") == true)
        #expect(g?.line == 13)
        let h = failure { _ = try table.int("server.port", in: 1...65535) }
        #expect(h?.description == "line 12, column 1: 'server.port' must be between 1 and 65535, found 70000")
        let i = failure { _ = try table.table("name") }
        #expect(i?.message == "'name' must be a table, but it is a string")
        let j = failure { _ = try table.tableArray("server") }
        #expect(j?.message == "'server' must be an array of tables, but it is a table")
        let k = failure { _ = try table.tableArray("tags") }
        #expect(k?.message == "'tags' must be an array of tables, but element 0 is a string")
        let l = failure { _ = try table.string("listeners.name") }
        #expect(l?.message.hasPrefix("'listeners' is an array, not a table") == true)
    }

    @Test func unknownKeysAreRejectedWithLineAndSuggestion() throws {
        let table = try TOMLTable(parsing: Self.text)
        let root: Set = ["name", "workers", "ratio", "timeout", "verbose", "tags", "ports", "mixed", "huge", "server", "listeners"]
        #expect(failure { try table.rejectUnknownKeys(allowed: root) } == nil)

        var fewer = root
        fewer.remove("ports")
        fewer.remove("tags")
        let first = failure { try table.rejectUnknownKeys(allowed: fewer) }
        #expect(first?.description == "line 6, column 1: unknown key 'tags'")  // source order: tags before ports

        let server = try #require(try table.table("server"))
        let typo = failure { try server.rejectUnknownKeys(allowed: ["port", "sockets"]) }
        #expect(typo?.description == "line 13, column 1: unknown key 'server.socket'; did you mean 'sockets'?")

        let listeners = try #require(try table.tableArray("listeners"))
        #expect(failure { try listeners[0].rejectUnknownKeys(allowed: ["name", "port"]) } == nil)
        let nested = failure { try listeners[1].rejectUnknownKeys(allowed: ["name", "port"]) }
        #expect(nested?.description == "line 20, column 1: unknown key 'listeners[1].prot'; did you mean 'port'?")

        let socket = try #require(try table.table("server.socket"))
        let inline = failure { try socket.rejectUnknownKeys(allowed: ["path"]) }
        #expect(inline?.description == "line 13, column 37: unknown key 'server.socket.mode'")
    }

    @Test func locationsAndNames() throws {
        let table = try TOMLTable(parsing: "a = 1\n[t]\n  b.c = 2\n\"odd.key\" = 3")
        #expect(table.location(of: "a")?.line == 1)
        #expect(table.location(of: "t")?.line == 2)
        #expect(table.location(of: "t.b.c")?.line == 3)
        #expect(table.location(of: "t.b.c")?.column == 5)
        #expect(table.location(of: "nope") == nil)
        #expect(table.name == "")
        let t = try #require(try table.table("t"))
        #expect(t.values["odd.key"] == .integer(3))
        #expect(t.keys == ["b", "odd.key"])
        let unknown: TOMLError?
        do { try t.rejectUnknownKeys(allowed: ["b"]); unknown = nil } catch { unknown = error }
        #expect(unknown?.message == "unknown key 't.\"odd.key\"'")
    }
}

// MARK: - A realistic configuration

@Suite("TOML configuration sample")
struct TOMLConfigSampleTests {
    static let sample = #"""
        # moatd configuration — every key is optional; defaults are documented.

        data_directory = "/var/lib/moat"

        [server]
        socket_path = "/run/moat/moat.sock"
        socket_mode = 0o660
        max_frame_bytes = 1_048_576          # 1 MiB
        max_in_flight_per_connection = 64
        max_connections = 1_024
        frame_timeout_seconds = 5.0
        idle_timeout_seconds = 300
        default_deadline_ms = 5_000
        max_deadline_ms = 60_000

        [access]
        allowed_uids = [0, 33, 1001]
        allowed_gids = [
            0,
            998,  # moat-clients
        ]
        admin_uids = [0]

        [database]
        path = "/var/lib/moat/moat.db"
        synchronous = "FULL"
        readers = 4
        busy_timeout_ms = 5000

        [crypto]
        key_file = '/etc/moat/secret.key'
        argon2 = { memory_kib = 19_456, iterations = 2, parallelism = 1 }

        [logging]
        level = "info"
        format = "json"
        redact = ["password", "token", "totp_secret"]
        labels.service = "moatd"
        labels."deployment.env" = "production"

        [[consumers]]
        name = "mailer"
        max_batch = 100

        [[consumers]]
        name = "billing"
        max_batch = 50
        description = """\
            Billing worker: cancels subscriptions \
            for purged accounts."""
        """#

    /// What a configuration loader does with the table: typed reads with defaults
    /// and unknown keys rejected at every level.
    struct ServerConfig: Equatable {
        var socketPath = "/run/moat/moat.sock"
        var socketMode = 0o600
        var maxFrameBytes = 1 << 20
        var frameTimeout = 10.0
        var allowedUIDs: [Int] = []
        var syncMode = "NORMAL"
        var argon2Memory = 19_456
        var logLevel = "info"
        var redact: [String] = []
        var consumers: [String] = []
    }

    static func load(_ text: String) throws(TOMLError) -> ServerConfig {
        var config = ServerConfig()
        let root = try TOMLTable(parsing: text)
        try root.rejectUnknownKeys(allowed: ["data_directory", "server", "access", "database", "crypto", "logging", "consumers"])
        if let server = try root.table("server") {
            try server.rejectUnknownKeys(allowed: [
                "socket_path", "socket_mode", "max_frame_bytes", "max_in_flight_per_connection", "max_connections",
                "frame_timeout_seconds", "idle_timeout_seconds", "default_deadline_ms", "max_deadline_ms",
            ])
            config.socketPath = try server.string("socket_path") ?? config.socketPath
            config.socketMode = try server.int("socket_mode", in: 0...0o777) ?? config.socketMode
            config.maxFrameBytes = try server.int("max_frame_bytes", in: 1024...(64 << 20)) ?? config.maxFrameBytes
            config.frameTimeout = try server.double("frame_timeout_seconds") ?? config.frameTimeout
        }
        if let access = try root.table("access") {
            try access.rejectUnknownKeys(allowed: ["allowed_uids", "allowed_gids", "admin_uids", "admin_gids"])
            config.allowedUIDs = try access.intArray("allowed_uids") ?? []
        }
        if let database = try root.table("database") {
            try database.rejectUnknownKeys(allowed: ["path", "synchronous", "readers", "busy_timeout_ms"])
            config.syncMode = try database.string("synchronous") ?? config.syncMode
        }
        if let crypto = try root.table("crypto") {
            try crypto.rejectUnknownKeys(allowed: ["key_file", "argon2"])
            if let argon2 = try crypto.table("argon2") {
                try argon2.rejectUnknownKeys(allowed: ["memory_kib", "iterations", "parallelism"])
                config.argon2Memory = try argon2.int("memory_kib") ?? config.argon2Memory
            }
        }
        if let logging = try root.table("logging") {
            try logging.rejectUnknownKeys(allowed: ["level", "format", "redact", "labels"])
            config.logLevel = try logging.string("level") ?? config.logLevel
            config.redact = try logging.stringArray("redact") ?? []
        }
        for consumer in try root.tableArray("consumers") ?? [] {
            try consumer.rejectUnknownKeys(allowed: ["name", "max_batch", "description"])
            if let name = try consumer.string("name") { config.consumers.append(name) }
        }
        return config
    }

    @Test func parsesTheWholeSample() throws {
        let root = try TOMLTable(parsing: Self.sample)
        #expect(root.keys == ["access", "consumers", "crypto", "data_directory", "database", "logging", "server"])
        #expect(try root.int("server.max_frame_bytes") == 1_048_576)
        #expect(try root.double("server.idle_timeout_seconds") == 300)
        #expect(try root.intArray("access.allowed_gids") == [0, 998])
        #expect(try root.string("crypto.key_file") == "/etc/moat/secret.key")
        #expect(try root.int("crypto.argon2.parallelism") == 1)
        #expect(try root.string("logging.labels.service") == "moatd")
        #expect(try root.table("logging.labels")?.values["deployment.env"] == .string("production"))
        let consumers = try #require(try root.tableArray("consumers"))
        #expect(try consumers[1].string("description") == "Billing worker: cancels subscriptions for purged accounts.")
    }

    @Test func loaderReadsTypedValues() throws {
        let config = try Self.load(Self.sample)
        #expect(config == ServerConfig(
            socketPath: "/run/moat/moat.sock", socketMode: 0o660, maxFrameBytes: 1_048_576, frameTimeout: 5.0,
            allowedUIDs: [0, 33, 1001], syncMode: "FULL", argon2Memory: 19_456, logLevel: "info",
            redact: ["password", "token", "totp_secret"], consumers: ["mailer", "billing"]))
        #expect(try Self.load("") == ServerConfig())
    }

    @Test func loaderRejectsTyposAndBadTypes() {
        func loadError(_ text: String) -> TOMLError? {
            do { _ = try Self.load(text); return nil } catch { return error }
        }
        let typo = loadError(Self.sample.replacing("max_in_flight_per_connection", with: "max_inflight_per_connection"))
        #expect(typo?.description == "line 9, column 1: unknown key 'server.max_inflight_per_connection'; did you mean 'max_in_flight_per_connection'?")

        let nested = loadError(Self.sample.replacing("iterations = 2", with: "iteration = 2"))
        #expect(nested?.line == 32)
        #expect(nested?.message == "unknown key 'crypto.argon2.iteration'; did you mean 'iterations'?")

        let section = loadError("[servre]\nsocket_path = 'x'")
        #expect(section?.description == "line 1, column 1: unknown key 'servre'; did you mean 'server'?")

        let wrongType = loadError("[server]\nsocket_path = 42")
        #expect(wrongType?.description == "line 2, column 1: 'server.socket_path' must be a string, but it is an integer")

        let range = loadError("[server]\nmax_frame_bytes = 10")
        #expect(range?.description == "line 2, column 1: 'server.max_frame_bytes' must be between 1024 and 67108864, found 10")

        let consumer = loadError(Self.sample + "\nmax_bach = 3\n")
        #expect(consumer?.message == "unknown key 'consumers[1].max_bach'; did you mean 'max_batch'?")

        let syntax = loadError("[server]\nsocket_path \"x\"")
        #expect(syntax?.description.hasPrefix("line 2, column 13: expected '=' after key 'socket_path'") == true)
    }
}
