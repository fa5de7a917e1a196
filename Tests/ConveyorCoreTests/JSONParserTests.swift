import ConveyorCore
import Foundation
import Testing

@Suite("JSON parser")
struct JSONParserTests {
    static let valid: [(String, JSONValue)] = [
        ("null", .null),
        (" true ", .bool(true)),
        ("false", .bool(false)),
        ("0", .integer(0)),
        ("-0", .integer(0)),
        ("42", .integer(42)),
        ("-9223372036854775808", .integer(.min)),
        ("9223372036854775807", .integer(.max)),
        ("9223372036854775808", .number(9_223_372_036_854_775_808)),
        ("1.5", .number(1.5)),
        ("1.0", .number(1)),
        ("-2.5e3", .number(-2500)),
        ("1E-2", .number(0.01)),
        ("1e+2", .number(100)),
        (#""""#, .string("")),
        (#""plain""#, .string("plain")),
        (#""a\"b\\c\/d\be\ff\ng\rh\ti""#, .string("a\"b\\c/d\u{08}e\u{0C}f\ng\rh\ti")),
        (#""\u00e9\u4e2d""#, .string("é中")),
        (#""\ud83d\ude80 🚀""#, .string("🚀 🚀")),
        (#""\u0000""#, .string("\u{0}")),
        ("[]", .array([])),
        ("[1, \"two\", [null]]", .array([.integer(1), .string("two"), .array([.null])])),
        ("{}", .object([:])),
        (" {\"a\" : {\"b\" :[ true ]} }\n", .object(["a": .object(["b": .array([.bool(true)])])])),
        (#"{"k":1,"k":2}"#, .object(["k": .integer(2)])),
    ]

    @Test("valid documents", arguments: valid)
    func parsesValid(text: String, expected: JSONValue) throws {
        #expect(try JSONParser.parse(text) == expected)
    }

    static let invalid: [(String, String)] = [
        ("", "unexpected end of input"),
        ("   ", "unexpected end of input"),
        ("nul", "unexpected end of input in a literal"),
        ("nulL", "invalid literal"),
        ("truex", "after the JSON value"),
        ("1 2", "after the JSON value"),
        ("01", "leading zeros"),
        ("-", "needs digits"),
        ("1.", "digits after '.'"),
        (".5", "expected a value"),
        ("1e", "digits in its exponent"),
        ("+1", "expected a value"),
        ("1e999", "out of range"),
        ("NaN", "expected a value"),
        ("[1,]", "expected a value"),
        ("[1 2]", "expected ',' or ']'"),
        ("{\"a\":1,}", "expected an object key"),
        ("{a:1}", "expected an object key"),
        ("{\"a\" 1}", "expected ':'"),
        ("{\"a\":1", "expected ',' or '}'"),
        ("\"abc", "unterminated string"),
        ("\"a\\", "unterminated escape"),
        ("\"\\x\"", "invalid escape"),
        ("\"\\u12zz\"", "invalid hex digit"),
        ("\"\\u12", "unterminated \\u escape"),
        ("\"\\ud800\"", "unpaired surrogate"),
        ("\"\\ud800\\u0041\"", "unpaired surrogate"),
        ("\"\\udc00\"", "unpaired surrogate"),
        ("\"tab\there\"", "raw control character"),
        ("// comment\n1", "expected a value"),
        ("\u{FEFF}1", "expected a value"),
    ]

    @Test("invalid documents are refused with a reason", arguments: invalid)
    func refusesInvalid(text: String, reason: String) {
        #expect {
            try JSONParser.parse(text)
        } throws: { error in
            String(describing: error).contains(reason)
        }
    }

    @Test("invalid UTF-8 inside a string is refused, also after an escape")
    func invalidUTF8() {
        for bytes in [[0x22, 0xC3, 0x28, 0x22], [0x22, 0x5C, 0x6E, 0xFF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22]] as [[UInt8]] {
            #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse(Data(bytes)) }
        }
    }

    @Test("nesting is followed to maxDepth and refused beyond, without exhausting the stack")
    func depth() throws {
        let deepest = String(repeating: "[", count: JSONParser.maxDepth) + String(repeating: "]", count: JSONParser.maxDepth)
        _ = try JSONParser.parse(deepest)
        let tooDeep = String(repeating: "{\"a\":", count: JSONParser.maxDepth + 1) + "1" + String(repeating: "}", count: JSONParser.maxDepth + 1)
        #expect { try JSONParser.parse(tooDeep) } throws: { String(describing: $0).contains("nested deeper than 512") }
        #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse(String(repeating: "[", count: 1_000_000)) }
    }

    @Test("agrees with Foundation on generated documents")
    func agreesWithFoundation() throws {
        let random = SeededRandomSource(seed: 20_261_130)
        for _ in 0..<500 {
            let value = Self.generate(depth: 0, random: random)
            let data = try JSONSerialization.data(withJSONObject: Self.foundationObject(value), options: [.fragmentsAllowed])
            #expect(try JSONParser.parse(data) == value, "\(String(decoding: data, as: UTF8.self))")
        }
    }

    @Test("an object's members come with the exact text of their values")
    func rawMembers() throws {
        let text = #"{"v":1, "args" : {"a": [1, 2.5, "x"]} ,"kind":"k"}"#
        let parsed = try #require(try JSONParser.parseObjectKeepingRaw(Data(text.utf8)))
        let range = try #require(parsed.raw["args"])
        #expect(String(decoding: Data(text.utf8)[range], as: UTF8.self) == #"{"a": [1, 2.5, "x"]}"#)
        #expect(parsed.members["v"] == .integer(1))
        #expect(try JSONParser.parseObjectKeepingRaw(Data("[1]".utf8)) == nil)
    }

    // MARK: - Generated documents

    private static func generate(depth: Int, random: SeededRandomSource) -> JSONValue {
        let pick = depth > 3 ? random.next(upTo: 5) : random.next(upTo: 7)
        switch pick {
        case 0: return .null
        case 1: return .bool(random.next(upTo: 2) == 0)
        case 2: return .integer(Int64(random.next(upTo: 2_000_001)) - 1_000_000)
        case 3: return .number(Double(random.next(upTo: 1_000_000)) - 500_000.75)  // never whole: Foundation writes 2.0 as 2
        case 4:
            let alphabet = Array("aZ0 \"\\/\n\t\u{01}é中🚀\u{7F}")
            return .string(String((0..<random.next(upTo: 12)).map { _ in alphabet[random.next(upTo: alphabet.count)] }))
        case 5: return .array((0..<random.next(upTo: 5)).map { _ in generate(depth: depth + 1, random: random) })
        default:
            var members: [String: JSONValue] = [:]
            for index in 0..<random.next(upTo: 5) { members["k\(index)\u{e9}"] = generate(depth: depth + 1, random: random) }
            return .object(members)
        }
    }

    private static func foundationObject(_ value: JSONValue) -> Any {
        switch value {
        case .null: NSNull()
        case .bool(let flag): flag
        case .integer(let number): number
        case .number(let number): number
        case .string(let text): text
        case .array(let items): items.map(foundationObject)
        case .object(let members): members.mapValues(foundationObject)
        }
    }
}

extension SeededRandomSource {
    fileprivate func next(upTo bound: Int) -> Int { Int(nextUnit() * Double(bound)) }
}
