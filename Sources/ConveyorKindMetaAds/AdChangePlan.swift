import ConveyorCore
public import ConveyorMeta
public import Foundation

/// How a chunk of pending changes becomes few Graph calls: coalescing, then packing into batches.
/// Pure, so every rule is tested without a network.
public enum AdChangePlan {
    /// A job's validated change, with its position in the chunk (the claim order breaks ties).
    public struct Pending: Sendable, Equatable {
        public var job: UUID
        public var change: AdChange
        public var position: Int

        public init(job: UUID, change: AdChange, position: Int) {
            self.job = job
            self.change = change
            self.position = position
        }

        var key: String { "\(change.objectID)/\(change.field.rawValue)" }
    }

    /// Per object and field, the latest `requested_at` wins (the later claimed on a tie); the others are
    /// superseded by it.
    ///
    /// A pause followed by a later activate (or the reverse) of one object coalesces too, to the later
    /// one. That is safe because `status` is a level, not an event: both requests are pending at the same
    /// moment, so the pause's time has already passed, and sending both would only flap the object off
    /// and on within a second, which spends nothing and can only disturb delivery. What the requester
    /// asked last is what the object ends with either way.
    public static func coalesce(_ pending: [Pending]) -> (winners: [Pending], superseded: [(job: UUID, by: UUID)]) {
        var best: [String: Pending] = [:]
        var order: [String] = []
        var superseded: [(UUID, UUID)] = []
        for item in pending {
            guard let current = best[item.key] else {
                best[item.key] = item
                order.append(item.key)
                continue
            }
            if (item.change.requestedAt, item.position) > (current.change.requestedAt, current.position) {
                superseded.append((current.job, item.job))
                best[item.key] = item
            } else {
                superseded.append((item.job, current.job))
            }
        }
        // Whoever lost to a later loser lost to the final winner.
        let winnerOf = Dictionary(uniqueKeysWithValues: order.map { (key: String) -> (String, UUID) in (key, best[key]!.job) })
        let keyOf = Dictionary(pending.map { ($0.job, $0.key) }, uniquingKeysWith: { first, _ in first })
        let resolved = superseded.map { loser, _ in (job: loser, by: winnerOf[keyOf[loser]!]!) }
        return (order.map { best[$0]! }, resolved)
    }

    /// One object's fields sent in one operation (`POST v23.0/{id}` with `daily_budget=…&status=…`).
    public struct ObjectOperation: Sendable, Equatable {
        public var account: String
        public var objectType: AdChange.ObjectType
        public var objectID: String
        public var campaignID: String?
        /// Field → the winning change.
        public var fields: [AdChange.Field: Pending]

        public func operation(version: String) -> GraphBatch.Operation {
            GraphBatch.Operation(
                method: "POST", relativeURL: "\(version)/\(objectID)",
                body: fields.keys.sorted().map { ($0.rawValue, fields[$0]!.change.value) })
        }
    }

    /// Groups winners by object, in first-seen order.
    public static func operations(_ winners: [Pending]) -> [ObjectOperation] {
        var byObject: [String: ObjectOperation] = [:]
        var order: [String] = []
        for item in winners {
            let change = item.change
            if byObject[change.objectID] == nil {
                byObject[change.objectID] = ObjectOperation(
                    account: change.adAccountID, objectType: change.objectType, objectID: change.objectID, campaignID: change.campaignID, fields: [:])
                order.append(change.objectID)
            }
            byObject[change.objectID]!.fields[change.field] = item
        }
        return order.map { byObject[$0]! }
    }

    /// Packs operations into batches of at most ``GraphBatch/maxOperations``, never two ad sets of one
    /// campaign in one batch (api-notes §C.1): first fit, ad sets of the largest campaigns first, so the
    /// number of batches is the larger of ⌈n / 50⌉ and the most ad sets one campaign has.
    public static func batches(_ operations: [ObjectOperation], limit: Int = GraphBatch.maxOperations) -> [[ObjectOperation]] {
        var perCampaign: [String: Int] = [:]
        for operation in operations where operation.objectType == .adset { perCampaign[operation.campaignID ?? "", default: 0] += 1 }
        let ordered = operations.enumerated().sorted { lhs, rhs in
            let l = lhs.element.objectType == .adset ? perCampaign[lhs.element.campaignID ?? ""] ?? 0 : 0
            let r = rhs.element.objectType == .adset ? perCampaign[rhs.element.campaignID ?? ""] ?? 0 : 0
            return l != r ? l > r : lhs.offset < rhs.offset
        }.map(\.element)
        var batches: [[ObjectOperation]] = []
        var campaigns: [Set<String>] = []
        for operation in ordered {
            let campaign = operation.objectType == .adset ? operation.campaignID ?? "" : nil
            if let index = batches.indices.first(where: { batches[$0].count < limit && (campaign == nil || !campaigns[$0].contains(campaign!)) }) {
                batches[index].append(operation)
                if let campaign { campaigns[index].insert(campaign) }
            } else {
                batches.append([operation])
                campaigns.append(campaign.map { [$0] } ?? [])
            }
        }
        return batches
    }
}
