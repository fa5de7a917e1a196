import NIOCore
import NIOHTTP1
import NIOPosix

/// What a test request got back.
struct TestHTTPResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: String
}

/// A minimal HTTP/1.1 client on SwiftNIO: one request per connection, redirects not followed (the tests
/// check them), so each test sees exactly what the server answered.
enum TestHTTPClient {
    static func send(
        _ method: HTTPMethod, port: Int, path: String, headers: [(String, String)] = [], form: [(String, String)]? = nil
    ) async throws -> TestHTTPResponse {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        let body = form.map { fields in
            fields.map { "\($0.0)=\($0.1.addingPercentEncoding())" }.joined(separator: "&")
        }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1:\(port)")
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body {
            head.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            head.headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(.head(head))
            if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body)))) }
            try await outbound.write(.end(nil))
            var response = TestHTTPResponse(status: .imATeapot, headers: HTTPHeaders(), body: "")
            for try await part in inbound {
                switch part {
                case .head(let received): (response.status, response.headers) = (received.status, received.headers)
                case .body(let buffer): response.body += String(buffer: buffer)
                case .end: return response
                }
            }
            return response
        }
    }
}

extension String {
    /// Percent-encodes everything but unreserved characters (form values).
    func addingPercentEncoding() -> String {
        var result = ""
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(UnicodeScalar(byte))
            default:
                result += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return result
    }

    private func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
