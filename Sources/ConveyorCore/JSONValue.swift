import Foundation

/// Any JSON value, decoded without a schema (for envelope validation with precise messages).
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The JSON type's name, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

extension JSONValue {
    /// What keeps this value from being stored as PostgreSQL `jsonb`: a U+0000 in a string or key, or
    /// nesting deeper than `maxDepth`; `nil` when it can be stored.
    public func storageProblem(maxDepth: Int) -> NewJob.ValidationError? {
        var stack: [(JSONValue, Int)] = [(self, 1)]
        while let (value, depth) = stack.popLast() {
            switch value {
            case .string(let text):
                if text.utf8.contains(0) { return .nulCharacter(field: "args") }
            case .array(let items):
                guard depth <= maxDepth else { return .argsTooDeep }
                for item in items { stack.append((item, depth + 1)) }
            case .object(let fields):
                guard depth <= maxDepth else { return .argsTooDeep }
                for (key, item) in fields {
                    if key.utf8.contains(0) { return .nulCharacter(field: "args") }
                    stack.append((item, depth + 1))
                }
            case .null, .bool, .integer, .number:
                break
            }
        }
        return nil
    }
}
