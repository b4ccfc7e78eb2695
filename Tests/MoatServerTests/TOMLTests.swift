import Foundation
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
        let doc = try parse(text)
        guard case .table(let big)? = doc["big"], case .table(let wide)? = big["wide"] else {
            Issue.record("no [big] table with an inline 'wide' table")
            return
        }
        #expect(big.count == 20_001)
        #expect(big["key_19999"] == .integer(19_999))
        #expect(wide["k4999"] == .integer(4_999))
        // Locating an error at the end of a long document, on a long line.
        let late = parseError(text + "[big]\n")
        #expect(late?.line == 20_003)
        #expect(late?.message.contains("line 1") == true, "\(String(describing: late))")  // where [big] was first defined
        let wideError = parseError(text.replacing("k4999 = 4999", with: "k4999 = ?"))
        #expect(wideError?.line == 20_002)
        #expect((wideError?.column ?? 0) > 40_000)
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

// MARK: - A realistic document

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

    /// The value at `keys` below the root, through tables only.
    static func value(_ root: [String: TOMLValue], _ keys: String...) -> TOMLValue? {
        var current = TOMLValue.table(root)
        for key in keys {
            guard case .table(let table) = current, let next = table[key] else { return nil }
            current = next
        }
        return current
    }

    @Test func parsesTheWholeSample() throws {
        let root = try parse(Self.sample)
        #expect(root.keys.sorted() == ["access", "consumers", "crypto", "data_directory", "database", "logging", "server"])
        #expect(Self.value(root, "server", "max_frame_bytes") == .integer(1_048_576))
        #expect(Self.value(root, "server", "socket_mode") == .integer(0o660))
        #expect(Self.value(root, "server", "frame_timeout_seconds") == .float(5.0))
        #expect(Self.value(root, "access", "allowed_gids") == .array([.integer(0), .integer(998)]))
        #expect(Self.value(root, "crypto", "key_file") == .string("/etc/moat/secret.key"))
        #expect(Self.value(root, "crypto", "argon2", "parallelism") == .integer(1))
        #expect(Self.value(root, "logging", "labels", "service") == .string("moatd"))
        #expect(Self.value(root, "logging", "labels", "deployment.env") == .string("production"))
        #expect(Self.value(root, "logging", "redact") == .array([.string("password"), .string("token"), .string("totp_secret")]))
        guard case .array(let consumers)? = root["consumers"], consumers.count == 2, case .table(let billing) = consumers[1]
        else {
            Issue.record("consumers is not an array of two tables")
            return
        }
        #expect(billing["name"] == .string("billing"))
        #expect(billing["description"] == .string("Billing worker: cancels subscriptions for purged accounts."))
    }

    @Test func syntaxErrorsKeepLineAndColumn() {
        let error = parseError("[server]\nsocket_path \"x\"")
        #expect(error?.description.hasPrefix("line 2, column 13: expected '=' after key 'socket_path'") == true)
        let duplicate = parseError(Self.sample + "\n[server]\n")
        #expect(duplicate?.line == 51)
        #expect(duplicate?.message.contains("line 5") == true, "\(String(describing: duplicate))")
    }
}

// MARK: - Through the loader

/// What the loader's table reader does with parsed TOML: typed reads,
/// defaults for absent keys, errors naming the key for wrong types, ranges
/// and unknown keys, and parse errors with their line and column.
@Suite("TOML through the configuration loader")
struct TOMLLoaderTests {
    static func load(_ text: String, overrides: [String] = []) throws -> MoatConfiguration {
        let path = NSTemporaryDirectory() + "moatd-toml-\(UUID().uuidString).toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try ConfigurationLoader.load(file: path, overrides: overrides)
    }

    /// The loader's message for `text`, or nil if it loads.
    static func failure(_ text: String) -> String? {
        do {
            _ = try load(text)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func typedValuesInEveryTOMLSpelling() throws {
        let configuration = try Self.load(#"""
            "data_dir" = '/var/lib/moat'     # a quoted key, a literal string
            limits.max_connections = 64      # a dotted key at the root
            store = { readers = 2, synchronous = "NORMAL" }

            [socket]
            path = "/run/moat/moat.sock"
            mode = "0640"

            [access]
            allow_uids = [
                0,
                1_001,   # underscores
            ]
            admin_gids = [0x3E8]

            [log]
            level = "debug"
            """#)
        var expected = MoatConfiguration()
        expected.dataDirectory = "/var/lib/moat"
        expected.limits.maxConnections = 64
        expected.store.readers = 2
        expected.store.synchronous = .normal
        expected.socket.path = "/run/moat/moat.sock"
        expected.socket.mode = 0o640
        expected.access.allowUIDs = [0, 1001]
        expected.access.adminGIDs = [1000]
        expected.log.level = .debug
        #expect(configuration == expected)
    }

    @Test func absentKeysKeepTheirDefaults() throws {
        #expect(try Self.load("# nothing but a comment\n") == MoatConfiguration())
        let partial = try Self.load("[limits]\nmax_connections = 9\n")
        var expected = MoatConfiguration()
        expected.limits.maxConnections = 9
        #expect(partial == expected)
    }

    @Test func wrongTypesNameTheKeyAndTheExpectedType() {
        #expect(Self.failure("[socket]\npath = 42") == "socket.path: expected a string")
        #expect(Self.failure("[limits]\nmax_connections = \"many\"") == "limits.max_connections: expected an integer")
        #expect(Self.failure("[limits]\nmax_connections = 1.5") == "limits.max_connections: expected an integer")
        #expect(Self.failure("[access]\nallow_uids = 5") == "access.allow_uids: expected an array of ids")
        #expect(Self.failure("[access]\nallow_uids = [\"root\"]") == "access.allow_uids: expected non-negative integer ids")
        #expect(Self.failure("socket = 3") == "socket: expected a table")
        #expect(Self.failure("[limits]\nmax_frame_bytes = 10") == "limits.max_frame_bytes: 10 is outside 1024...67108864")
    }

    @Test func unknownKeysAreNamedInFullWithTheSettingProbablyMeant() {
        #expect(Self.failure("[limits]\nmax_conections = 5") == "limits.max_conections: unknown setting (did you mean limits.max_connections?)")
        #expect(Self.failure("[servre]\npath = 'x'") == "servre: unknown setting")
        #expect(Self.failure("[sokcet]\npath = 'x'") == "sokcet: unknown setting (did you mean socket?)")
        #expect(
            Self.failure("[store]\nreaders = 2\nbusy = 1\nzzz = 2")
                == "store.busy, store.zzz: unknown settings")
    }

    @Test func parseErrorsKeepLineAndColumnThroughTheLoader() {
        let message = Self.failure("data_dir = \"x\"\n[limits]\nmax_connections 5\n")
        #expect(message?.contains(": line 3, column 17: expected '=' after key 'max_connections'") == true, "\(String(describing: message))")
    }
}
