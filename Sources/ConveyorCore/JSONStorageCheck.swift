/// What keeps a JSON text from being stored as PostgreSQL `jsonb`, checked on the text itself.
///
/// `jsonb` cannot hold U+0000 and its parser has a stack limit, so both are refused before a batch is
/// written. The check reads the bytes that will be stored rather than a parsed ``JSONValue``: a Swift
/// dictionary merges canonically equivalent keys (`"é"` and `"e\u{301}"`) into one entry, so a parsed
/// value can hide a deeply nested member that `jsonb`, which compares keys byte for byte, keeps.
public enum JSONStorageCheck {
    /// The first problem found in `text`, which must already be valid JSON: a `\u0000` escape (the only
    /// way a NUL can appear in valid JSON) or nesting deeper than `maxDepth` (the outermost value is
    /// depth 1); `nil` when PostgreSQL can store it.
    public static func problem(in text: String, maxDepth: Int) -> NewJob.ValidationError? {
        var text = text
        return text.withUTF8 { problem(in: $0, maxDepth: maxDepth) }
    }

    static func problem(in bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) -> NewJob.ValidationError? {
        var depth = 0
        var index = 0
        let count = bytes.count
        while index < count {
            switch bytes[index] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > maxDepth { return .argsTooDeep }
                index += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                index += 1
            case UInt8(ascii: "\""):
                index += 1
                // Inside a string: skip to its closing quote, looking only at escapes.
                while index < count, bytes[index] != UInt8(ascii: "\"") {
                    if bytes[index] == UInt8(ascii: "\\") {
                        if index + 5 < count, bytes[index + 1] == UInt8(ascii: "u"),
                            bytes[index + 2] == UInt8(ascii: "0"), bytes[index + 3] == UInt8(ascii: "0"),
                            bytes[index + 4] == UInt8(ascii: "0"), bytes[index + 5] == UInt8(ascii: "0")
                        {
                            return .nulCharacter(field: "args")
                        }
                        index += 2
                    } else {
                        if bytes[index] == 0 { return .nulCharacter(field: "args") }
                        index += 1
                    }
                }
                index += 1
            case 0:
                return .nulCharacter(field: "args")
            default:
                index += 1
            }
        }
        return nil
    }
}
