public import NIOHTTP1

/// One HTTP request as the server hands it to a handler: the whole body is read first (small forms only).
public struct HTTPRequest: Sendable {
    /// `GET`, `POST`…
    public var method: HTTPMethod
    /// The path without the query, percent-decoded, e.g. `/jobs/3f…` (for display; routing uses ``segments``).
    public var path: String
    /// The path's segments, each percent-decoded after splitting (so `%2F` stays inside its segment).
    public var segments: [String]
    /// The peer's address, as the server saw it ("" when unknown).
    public var client: String = ""
    /// The query's parameters, percent-decoded (a repeated name keeps its last value).
    public var query: [String: String]
    /// The request headers.
    public var headers: HTTPHeaders
    /// The body's bytes (at most ``WebServer/Limits/maxBodyBytes``).
    public var body: [UInt8]

    /// Creates a request.
    public init(method: HTTPMethod, uri: String, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.method = method
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let rawPath = String(parts.first ?? "")
        path = Self.percentDecoded(rawPath, plusIsSpace: false)
        segments = rawPath.split(separator: "/").map { Self.percentDecoded(String($0), plusIsSpace: false) }
        query = parts.count > 1 ? Self.form(String(parts[1])) : [:]
        self.headers = headers
        self.body = body
    }

    /// The body as `application/x-www-form-urlencoded` fields.
    public var form: [String: String] { Self.form(String(decoding: body, as: UTF8.self)) }

    static func form(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecoded(String(parts[0]), plusIsSpace: true)
            fields[name] = parts.count > 1 ? percentDecoded(String(parts[1]), plusIsSpace: true) : ""
        }
        return fields
    }

    /// Decodes `%XX` escapes (and `+` in forms); malformed escapes are kept as written.
    static func percentDecoded(_ text: String, plusIsSpace: Bool) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hexValue(iterator[iterator.startIndex]), let low = hexValue(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else if byte == UInt8(ascii: "+"), plusIsSpace {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// What a handler answers.
public struct HTTPResponse: Sendable {
    /// The status.
    public var status: HTTPResponseStatus
    /// Headers besides `Content-Length` (set by the server).
    public var headers: HTTPHeaders
    /// The body.
    public var body: [UInt8]

    /// Creates a response.
    public init(status: HTTPResponseStatus, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A `text/plain` response.
    public static func text(_ text: String, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"], body: Array(text.utf8))
    }

    /// A `text/html` response that no other origin may frame.
    public static func html(_ html: String, status: HTTPResponseStatus = .ok) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [
                "Content-Type": "text/html; charset=utf-8", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
                "Cache-Control": "no-store",
            ],
            body: Array(html.utf8))
    }

    /// `303 See Other` to `location` (after a form's action).
    public static func redirect(_ location: String) -> HTTPResponse {
        HTTPResponse(status: .seeOther, headers: ["Location": location])
    }
}
