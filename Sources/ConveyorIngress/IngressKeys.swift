/// The Redis keys of the ingress. Every key starts with the hash tag (default `{conveyor}`), so the
/// Lua script's keys live in one slot and stay valid on Redis Cluster.
public struct IngressKeys: Sendable, Equatable {
    /// The hash tag every key starts with. Default `{conveyor}`.
    public var namespace: String

    /// Creates keys under `namespace` (tests use a namespace of their own).
    public init(namespace: String = "{conveyor}") {
        self.namespace = namespace
    }

    /// The list producers `LPUSH` envelopes onto: `{conveyor}:ingress`.
    public var ingress: String { "\(namespace):ingress" }
    /// The set of every processing list that may hold envelopes not yet committed to PostgreSQL.
    public var processingSet: String { "\(namespace):processing" }

    /// A batch's processing list: `{conveyor}:processing:<ingester>:<batch>`; `batch` must not contain `:`.
    public func batch(ingester: String, number: String) -> String { "\(namespace):processing:\(ingester):\(number)" }

    /// A batch's processing list: `{conveyor}:processing:<ingester>:<number>`.
    public func batch(ingester: String, number: Int) -> String { batch(ingester: ingester, number: String(number)) }

    /// The ingester that owns a processing list, parsed from its key.
    public func owner(ofBatch key: String) -> String? {
        let prefix = "\(namespace):processing:"
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        guard let colon = rest.lastIndex(of: ":") else { return nil }
        return String(rest[..<colon])
    }

    /// The expiring key an ingester refreshes while it lives: `{conveyor}:ingester:<id>`.
    public func heartbeat(ingester: String) -> String { "\(namespace):ingester:\(ingester)" }

    /// The short lock a survivor takes before recovering a dead ingester's processing list.
    public func recoveryLock(batch: String) -> String { "\(namespace):recovering:\(batch)" }
}
