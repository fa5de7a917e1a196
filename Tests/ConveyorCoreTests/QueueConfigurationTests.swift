import ConveyorCore
import Testing

@Suite("Queue configuration")
struct QueueConfigurationTests {
    @Test("parses names with and without their own concurrency")
    func parses() throws {
        let configuration = try QueueConfiguration.parse("default=20, render=2,mail", defaultConcurrency: 7)
        #expect(configuration.queues == [
            .init(name: "default", concurrency: 20), .init(name: "render", concurrency: 2), .init(name: "mail", concurrency: 7),
        ])
        #expect(configuration.totalConcurrency == 29)
    }

    @Test("rejects malformed lists with a reason", arguments: [(String, QueueConfiguration.ParseError)]([
        ("", .empty),
        ("default=0", .badConcurrency(queue: "default", value: "0")),
        ("default=x", .badConcurrency(queue: "default", value: "x")),
        ("Default=2", .badName("Default")),
        ("a,,b", .badName("")),
        ("a=1,a=2", .duplicate("a")),
    ]))
    func rejects(text: String, error: QueueConfiguration.ParseError) {
        #expect(throws: error) { try QueueConfiguration.parse(text, defaultConcurrency: 10) }
    }
}
