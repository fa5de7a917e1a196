import Foundation

/// The Lua script that moves up to N envelopes atomically from the ingress list to a batch's
/// processing list, in one round trip.
///
/// Producers `LPUSH`, so the oldest envelope is at the right end. The script takes the N rightmost,
/// appends them oldest-first to the processing list (so a batch list reads in FIFO order), registers
/// the list in the processing set, and returns `[remaining ingress length, envelope…]`.
/// Batches stay in the hundreds: Lua's `unpack` fails near 8,000 values.
enum IngressMoveScript {
    static let source = """
        local items = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
        local n = #items
        if n > 0 then
            redis.call('LTRIM', KEYS[1], 0, -n - 1)
            local ordered = {}
            for i = n, 1, -1 do ordered[#ordered + 1] = items[i] end
            redis.call('RPUSH', KEYS[2], unpack(ordered))
            redis.call('SADD', KEYS[3], KEYS[2])
            items = ordered
        end
        local result = { redis.call('LLEN', KEYS[1]) }
        for i = 1, n do result[#result + 1] = items[i] end
        return result
        """

    /// `EVAL` arguments moving up to `count` envelopes from `keys.ingress` into `batch`.
    static func arguments(keys: IngressKeys, batch: String, count: Int) -> [Data] {
        ["EVAL", source, "3", keys.ingress, batch, keys.processingSet, String(count)].map { Data($0.utf8) }
    }
}

/// The move script's source, for tools and tests that simulate an ingester.
public enum IngressMoveScriptSource {
    /// The Lua text (`KEYS`: ingress, batch list, processing set; `ARGV`: count).
    public static var text: String { IngressMoveScript.source }
}
