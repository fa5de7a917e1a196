// A service's own `conveyor` with one kind of its own and a schedule for it, in a few lines.
// Run it like the stock binary: `custom-conveyor migrate`, `custom-conveyor worker`, `custom-conveyor
// scheduler`, `custom-conveyor schedules`…
import Conveyor
import ConveyorCLI

/// `shop.send_receipt`: e-mails an order's receipt (here it only logs). Retried 7 times at most,
/// which envelopes that name no `max_attempts` get at ingest.
struct SendReceipt: JobHandler {
    struct Args: Decodable, Sendable { var orderID: Int }
    static let kind = "shop.send_receipt"

    var options: JobKindOptions { JobKindOptions(timeout: .seconds(30), retry: RetryPolicy(maxAttempts: 7)) }

    func run(_ args: Args, context: JobContext) async throws -> JobOutcome {
        context.logger.info("receipt sent", metadata: ["order_id": "\(args.orderID)"])
        return .completed
    }
}

/// Every night at 03:00 UTC, the receipts of the day are checked (order 0 stands for "all").
let nightly = try Schedule(name: "shop.receipts-nightly", cron: "0 3 * * *", kind: SendReceipt.kind, args: #"{"orderID": 0}"#)

ConveyorCommand.bootstrapLogging()
await ConveyorCommand.start(kinds: { $0.register(SendReceipt()) }, schedules: [nightly])
