/// Text from the database made safe to print on an operator's terminal.
///
/// Payloads, unique keys, tags, error messages and reasons come from producers and upstream APIs: an
/// `ESC ] 0 ;` sequence in one retitles the terminal, others clear it or move the cursor. Human output
/// shows every C0 and C1 control character (and DEL, and the bidirectional overrides that make text
/// read differently from what it is) as a visible escape; `--json` output stays exact.
enum TerminalText {
    static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar) else {
                result.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{1B}": result += "\\e"
            default:
                let hex = String(scalar.value, radix: 16)
                result += scalar.value <= 0xFF ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex : "\\u{\(hex)}"
            }
        }
        return result
    }

    /// C0 controls, DEL, C1 controls, and the bidirectional embedding, override and isolate characters.
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
