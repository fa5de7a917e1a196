public import Foundation

/// A strict RFC 8259 JSON parser from UTF-8 bytes to ``JSONValue``.
///
/// The ingest path parses every envelope, and Foundation's `JSONDecoder` (through `Codable` and
/// `JSONValue`'s type-probing `init(from:)`) was a third of a worker's CPU in the end-to-end benchmark
/// (docs/performance.md). This parser reads the bytes once, without `Codable`.
///
/// Strict: only the four JSON whitespace characters, no trailing commas, no comments, no leading
/// zeros, strings without raw control characters and with valid UTF-8, `\u` escapes whose surrogates
/// pair up, finite numbers, nothing after the value. Nesting is limited to ``maxDepth`` so hostile input
/// cannot exhaust the stack. Numbers without fraction or exponent that fit in `Int64` become
/// ``JSONValue/integer(_:)``, the others ``JSONValue/number(_:)``. A repeated object key keeps its last
/// value, as PostgreSQL's `jsonb` does.
public enum JSONParser {
    /// The deepest nesting of arrays and objects the parser follows.
    public static let maxDepth = 512

    /// Why bytes are not JSON, with the byte offset where parsing stopped.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { "\(message) at byte \(offset)" }
    }

    /// Parses one JSON value that must span all of `bytes`.
    public static func parse(_ bytes: Data) throws(SyntaxError) -> JSONValue {
        try withReader(bytes) { reader throws(SyntaxError) in try reader.document() }
    }

    /// Parses one JSON value that must span all of `text`.
    public static func parse(_ text: String) throws(SyntaxError) -> JSONValue {
        try parse(Data(text.utf8))
    }

    /// Parses a document that must be a JSON object and returns its members together with each
    /// member's raw text (the exact bytes of its value), so a caller can store a member verbatim instead
    /// of encoding it again. `nil` when the document is valid JSON but not an object (the value is
    /// returned for the error message).
    public static func parseObjectKeepingRaw(
        _ bytes: Data
    ) throws(SyntaxError) -> (members: [String: JSONValue], raw: [String: Range<Int>])? {
        try withReader(bytes) { reader throws(SyntaxError) in
            reader.skipWhitespace()
            guard reader.peek() == UInt8(ascii: "{") else { return nil }
            var raw: [String: Range<Int>] = [:]
            let value = try reader.object(depth: 1, keepRaw: true, raw: &raw)
            reader.skipWhitespace()
            guard reader.atEnd else { throw reader.error("unexpected \(reader.describeCurrent()) after the JSON value") }
            guard case .object(let members) = value else { return nil }
            return (members, raw)
        }
    }

    /// Parses a document that must be a JSON array and returns its elements with each one's raw text
    /// (the exact bytes), so a receiver can store each element verbatim (HubSpot's batch of events).
    /// `nil` when the document is valid JSON but not an array.
    public static func parseArrayKeepingRaw(_ bytes: Data) throws(SyntaxError) -> (elements: [JSONValue], raw: [Range<Int>])? {
        try withReader(bytes) { reader throws(SyntaxError) in
            reader.skipWhitespace()
            guard reader.peek() == UInt8(ascii: "[") else {
                _ = try reader.document()
                return nil
            }
            reader.index += 1
            var elements: [JSONValue] = [], raw: [Range<Int>] = []
            reader.skipWhitespace()
            if reader.peek() == UInt8(ascii: "]") {
                reader.index += 1
            } else {
                elements: while true {
                    reader.skipWhitespace()
                    let start = reader.index
                    elements.append(try reader.value(depth: 2))
                    raw.append(start..<reader.index)
                    reader.skipWhitespace()
                    switch reader.peek() {
                    case UInt8(ascii: ","): reader.index += 1
                    case UInt8(ascii: "]"):
                        reader.index += 1
                        break elements
                    default: throw reader.error("unexpected \(reader.describeCurrent()), expected ',' or ']'")
                    }
                }
            }
            reader.skipWhitespace()
            guard reader.atEnd else { throw reader.error("unexpected \(reader.describeCurrent()) after the JSON value") }
            return (elements, raw)
        }
    }

    private static func withReader<T>(
        _ bytes: Data, _ body: (inout Reader) throws(SyntaxError) -> T
    ) throws(SyntaxError) -> T {
        let result: Result<T, SyntaxError> = bytes.withUnsafeBytes { buffer in
            var reader = Reader(bytes: buffer)
            do throws(SyntaxError) { return .success(try body(&reader)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// A cursor over the input; only lives inside `withUnsafeBytes`.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var atEnd: Bool { index >= bytes.count }

        func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

        func error(_ message: String) -> SyntaxError { SyntaxError(message: message, offset: index) }

        func describeCurrent() -> String {
            guard let byte = peek() else { return "end of input" }
            if byte >= 0x20 && byte < 0x7F { return "character '\(Character(Unicode.Scalar(byte)))'" }
            return "byte 0x\(String(byte, radix: 16, uppercase: true))"
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        mutating func document() throws(SyntaxError) -> JSONValue {
            skipWhitespace()
            let value = try value(depth: 0)
            skipWhitespace()
            guard atEnd else { throw error("unexpected \(describeCurrent()) after the JSON value") }
            return value
        }

        mutating func value(depth: Int) throws(SyntaxError) -> JSONValue {
            guard let byte = peek() else { throw error("unexpected end of input, expected a value") }
            switch byte {
            case UInt8(ascii: "{"):
                var unused: [String: Range<Int>] = [:]
                return try object(depth: depth + 1, raw: &unused)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("unexpected \(describeCurrent()), expected a value")
            }
        }

        mutating func literal(_ word: StaticString) throws(SyntaxError) {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw error("unexpected end of input in a literal") }
            let expected = UnsafeRawBufferPointer(start: word.utf8Start, count: count)
            for offset in 0..<count where bytes[index + offset] != expected[offset] {
                throw error("invalid literal, expected \(word)")
            }
            index += count
        }

        /// Parses an object; with `keepRaw`, records each member's value bytes in `raw`.
        mutating func object(
            depth: Int, keepRaw: Bool = false, raw: inout [String: Range<Int>]
        ) throws(SyntaxError) -> JSONValue {
            guard depth <= JSONParser.maxDepth else { throw error("nested deeper than \(JSONParser.maxDepth) levels") }
            index += 1  // {
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if peek() == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw error("unexpected \(describeCurrent()), expected an object key") }
                let key = try string()
                skipWhitespace()
                guard peek() == UInt8(ascii: ":") else { throw error("unexpected \(describeCurrent()), expected ':'") }
                index += 1
                skipWhitespace()
                let start = index
                members[key] = try value(depth: depth)
                if keepRaw { raw[key] = start..<index }
                skipWhitespace()
                switch peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"): index += 1; return .object(members)
                default: throw error("unexpected \(describeCurrent()), expected ',' or '}'")
                }
            }
        }

        mutating func array(depth: Int) throws(SyntaxError) -> JSONValue {
            guard depth <= JSONParser.maxDepth else { throw error("nested deeper than \(JSONParser.maxDepth) levels") }
            index += 1  // [
            var items: [JSONValue] = []
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                skipWhitespace()
                items.append(try value(depth: depth))
                skipWhitespace()
                switch peek() {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"): index += 1; return .array(items)
                default: throw error("unexpected \(describeCurrent()), expected ',' or ']'")
                }
            }
        }

        mutating func string() throws(SyntaxError) -> String {
            index += 1  // opening quote
            let start = index
            // Fast path: no escapes, the bytes are the string.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let text = try decodeUTF8(start..<index)
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw error("raw control character 0x\(String(byte, radix: 16)) in a string") }
                index += 1
            }
            guard index < bytes.count else { throw error("unterminated string") }
            // Slow path: copy the bytes, resolving escapes.
            var utf8 = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    guard let text = String(validating: utf8, as: UTF8.self) else {
                        throw SyntaxError(message: "invalid UTF-8 in a string", offset: start)
                    }
                    return text
                case UInt8(ascii: "\\"):
                    index += 1
                    try escape(into: &utf8)
                case 0..<0x20:
                    throw error("raw control character 0x\(String(byte, radix: 16)) in a string")
                default:
                    utf8.append(byte)
                    index += 1
                }
            }
            throw error("unterminated string")
        }

        func decodeUTF8(_ range: Range<Int>) throws(SyntaxError) -> String {
            guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self) else {
                throw SyntaxError(message: "invalid UTF-8 in a string", offset: range.lowerBound)
            }
            return text
        }

        mutating func escape(into utf8: inout [UInt8]) throws(SyntaxError) {
            guard let byte = peek() else { throw error("unterminated escape") }
            index += 1
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(byte)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate \\u\(String(scalar, radix: 16, uppercase: true))")
                    }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else {
                        throw error("unpaired surrogate \\u\(String(scalar, radix: 16, uppercase: true))")
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("unpaired surrogate \\u\(String(scalar, radix: 16, uppercase: true))")
                }
                // Surrogates were paired or refused above, so every value here is a scalar.
                guard let unicode = Unicode.Scalar(scalar), let encoded = Unicode.UTF8.encode(unicode) else {
                    throw error("invalid code point \\u\(String(scalar, radix: 16, uppercase: true))")
                }
                utf8.append(contentsOf: encoded)
            default:
                index -= 1
                throw error("invalid escape \\\(describeCurrent())")
            }
        }

        mutating func hex4() throws(SyntaxError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw error("unterminated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("invalid hex digit in a \\u escape")
                }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }

        mutating func number() throws(SyntaxError) -> JSONValue {
            let start = index
            var integral = true
            if peek() == UInt8(ascii: "-") { index += 1 }
            guard let first = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
                throw error("a number needs digits")
            }
            if first == UInt8(ascii: "0") {
                index += 1
                if let next = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) {
                    throw error("a number cannot have leading zeros")
                }
            } else {
                skipDigits()
            }
            if peek() == UInt8(ascii: ".") {
                integral = false
                index += 1
                guard skipDigits() > 0 else { throw error("a number needs digits after '.'") }
            }
            if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
                integral = false
                index += 1
                if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
                guard skipDigits() > 0 else { throw error("a number needs digits in its exponent") }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if integral, let value = Int64(text) { return .integer(value) }
            guard let value = Double(text), value.isFinite else {
                throw SyntaxError(message: "number \(text.prefix(40)) is out of range", offset: start)
            }
            return .number(value)
        }

        @discardableResult
        mutating func skipDigits() -> Int {
            let start = index
            while let byte = peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
            return index - start
        }
    }
}
