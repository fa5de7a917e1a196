import ConveyorCore
import ConveyorPostgres
import ConveyorTestSupport
import ConveyorWeb
import ConveyorWorker
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import PostgresNIO
import Testing

/// What probes of the old home-made server found, each closed (issue 16.1).
@Suite("The web server against hostile clients", .serialized, .timeLimit(.minutes(3)))
struct WebHardeningTests {
    /// A raw TCP connection for byte-level probes.
    static func connect(_ port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
    }

    @Test("slowloris: a client that trickles header lines is cut off at the head deadline, and /healthz still answers meanwhile")
    func slowHeaders() async throws {
        let limits = WebServer.Limits(headDeadline: .milliseconds(400), idleTimeout: .seconds(60), maxConnections: 8)
        try await DashboardTests.withServer(limits: limits, { _ in .text("ok\n") }) { port in
            let channel = try await Self.connect(port)
            let (linesSent, received) = try await channel.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                    group.addTask {
                        // One header line every 100 ms, for up to 5 s: an idle timer would be reset by each.
                        try await outbound.write(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
                        for line in 0..<50 {
                            try? await Task.sleep(for: .milliseconds(100))
                            if Task.isCancelled { return (line, -1) }
                            do {
                                try await outbound.write(ByteBuffer(string: "X-Slow-\(line): 1\r\n"))
                            } catch {
                                return (line, -1)
                            }
                        }
                        return (50, -1)
                    }
                    group.addTask {
                        var bytes = 0
                        do {
                            for try await buffer in inbound { bytes += buffer.readableBytes }
                        } catch {}
                        return (-1, bytes)
                    }
                    var lines = -1, bytes = -1
                    while let (l, b) = try await group.next() {
                        if b >= 0 {
                            bytes = b
                            group.cancelAll()
                        }
                        if l >= 0 { lines = l }
                    }
                    return (lines, bytes)
                }
            }
            #expect(received == 0, "no answer to a head that never ended")
            #expect(linesSent < 50, "closed mid-trickle, after \(linesSent) lines")
            let health = try await TestHTTPClient.send(.GET, port: port, path: "/healthz")
            #expect(health.status == .ok)
        }
    }

    @Test("more connections than the cap wait rather than starve the server: /healthz answers once idle ones are cut")
    func connectionCap() async throws {
        let limits = WebServer.Limits(headDeadline: .milliseconds(300), maxConnections: 3)
        try await DashboardTests.withServer(limits: limits, { _ in .text("ok\n") }) { port in
            var idle: [NIOAsyncChannel<ByteBuffer, ByteBuffer>] = []
            for _ in 0..<6 { idle.append(try await Self.connect(port)) }
            let health = try await TestHTTPClient.send(.GET, port: port, path: "/healthz")
            #expect(health.status == .ok && health.body == "ok\n")
            for channel in idle { try? await channel.channel.close() }
        }
    }

    @Test("an oversized body is answered 413 from its Content-Length, before it is sent")
    func oversizedBody() async throws {
        try await DashboardTests.withServer({ _ in .text("read it all\n") }) { port in
            let channel = try await Self.connect(port)
            let answer = try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50000000\r\n\r\n"))
                var text = ""
                for try await buffer in inbound {
                    text += String(buffer: buffer)
                    if text.contains("\r\n\r\n") { break }
                }
                return text
            }
            #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer)")
        }
    }

    @Test("without a token only loopback host names are served (421 for a rebound name); with one, any host")
    func dnsRebinding() async throws {
        try await DashboardTests.withDashboard { port, _, _ in
            let rebound = try await TestHTTPClient.send(.GET, port: port, path: "/", headers: [("Host", "attacker.example:\(port)")])
            #expect(rebound.status == .misdirectedRequest)
            let forged = try await TestHTTPClient.send(.POST, port: port, path: "/queues/default/pause", headers: [("Host", "attacker.example"), ("Origin", "http://attacker.example")])
            #expect(forged.status == .misdirectedRequest)
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/", headers: [("Host", "localhost:\(port)")]).status == .ok)
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/").status == .ok)
        }
        try await DashboardTests.withDashboard(token: "0123456789abcdef-token") { port, _, _ in
            let named = try await TestHTTPClient.send(.GET, port: port, path: "/", headers: [("Host", "conveyor.example.com"), ("Authorization", "Bearer 0123456789abcdef-token")])
            #expect(named.status == .ok)
        }
    }

    @Test("sessions are signed and expire; logout clears them; five wrong tokens lock an address out for five minutes")
    func sessionsAndLockout() async throws {
        let token = "session-token-0123456789"
        let clock = ManualClock(Date())
        try await DashboardTests.withDashboard(token: token, clock: clock) { port, _, _ in
            let login = try await TestHTTPClient.send(.POST, port: port, path: "/login", form: [("token", token)])
            let cookie = String(try #require(login.headers.first(name: "Set-Cookie")).split(separator: ";")[0])
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/jobs", headers: [("Cookie", cookie)]).status == .ok)
            // A forged session (the expiry pushed out) fails its signature.
            let parts = cookie.split(separator: ".")
            let forged = "\(parts[0]).9999999999.\(parts[2])"
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/jobs", headers: [("Cookie", forged)]).status == .seeOther)
            // Logout clears the cookie (from the dashboard's own page).
            let logout = try await TestHTTPClient.send(.POST, port: port, path: "/logout", headers: [("Cookie", cookie), ("Origin", "http://127.0.0.1:\(port)")])
            #expect(logout.status == .seeOther && logout.headers.first(name: "Set-Cookie")?.contains("Max-Age=0") == true)
            // After 12 hours the session is over.
            clock.advance(by: 12 * 3600 + 1)
            #expect(try await TestHTTPClient.send(.GET, port: port, path: "/jobs", headers: [("Cookie", cookie)]).status == .seeOther)

            for _ in 0..<5 {
                #expect(try await TestHTTPClient.send(.POST, port: port, path: "/login", form: [("token", "guess")]).status == .unauthorized)
            }
            let locked = try await TestHTTPClient.send(.POST, port: port, path: "/login", form: [("token", token)])
            #expect(locked.status == .tooManyRequests && locked.headers.first(name: "Retry-After") != nil, "even the right token waits")
            clock.advance(by: 301)
            #expect(try await TestHTTPClient.send(.POST, port: port, path: "/login", form: [("token", token)]).status == .seeOther)
        }
    }

    @Test("the JSON API and text answers say nosniff")
    func nosniff() async throws {
        try await DashboardTests.withDashboard { port, _, _ in
            for path in ["/api/queues", "/api/jobs", "/healthz"] {
                let response = try await TestHTTPClient.send(.GET, port: port, path: path)
                #expect(response.headers.first(name: "X-Content-Type-Options") == "nosniff", "\(path)")
            }
        }
    }

    @Test("/healthz answers 503 within its timeout while PostgreSQL does not answer", .timeLimit(.minutes(1)))
    func healthWithoutDatabase() async throws {
        // A pool of one connection, stuck waiting for an advisory lock another session holds: the health
        // check's query cannot get an answer until the test lets go of the lock.
        try await TestDatabase.withFresh { other, url in
            try await TestDatabase.withClient(url: url, maxConnections: 1) { client in
                let dashboard = Dashboard(
                    store: PostgresJobStore(client: client), configuration: .init(token: nil, healthTimeout: .milliseconds(500)), logger: TestDatabase.logger)
                try await DashboardTests.withServer({ await dashboard.respond(to: $0) }) { port in
                    try await other.withConnection { holder in
                        _ = try await holder.query("SELECT pg_advisory_lock(4711)", logger: TestDatabase.logger).collect()
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            let held = Recorded<Int>()
                            group.addTask {
                                try await client.withConnection { connection in
                                    held.append([1])
                                    _ = try await connection.query("SELECT pg_advisory_lock(4711)", logger: TestDatabase.logger).collect()
                                    _ = try await connection.query("SELECT pg_advisory_unlock(4711)", logger: TestDatabase.logger).collect()
                                }
                            }
                            try await held.wait(for: "the only connection taken") { !$0.isEmpty }
                            let health = try await TestHTTPClient.send(.GET, port: port, path: "/healthz")
                            #expect(health.status == .serviceUnavailable && health.body.contains("did not answer"), "\(health.body)")
                            _ = try await holder.query("SELECT pg_advisory_unlock(4711)", logger: TestDatabase.logger).collect()
                            try await group.waitForAll()
                        }
                    }
                    #expect(try await TestHTTPClient.send(.GET, port: port, path: "/healthz").status == .ok)
                }
            }
        }
    }
}
