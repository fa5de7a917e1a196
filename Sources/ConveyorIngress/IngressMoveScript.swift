import ConveyorCore
import Foundation

/// The Lua script that moves up to N envelopes atomically from the ingress list to a batch's
/// processing list, in one round trip.
///
/// Producers `LPUSH`, so the oldest envelope is at the right end. The script takes envelopes from the
/// right one at a time (`LINDEX`, so nothing beyond the batch is copied) until it has N or the batch's
/// bytes would pass a cap (the first one is always taken), appends them oldest-first to the processing
/// list (so a batch list reads in FIFO order), registers the list in the processing set, and returns
/// `[remaining ingress length, envelope…]`.
///
/// An envelope longer than the per-item limit never enters a batch: a Redis string can be 512 MB, and
/// a batch travels in one reply and one PostgreSQL parameter. The script stores it aside, under
/// `<batch>:oversize:<position>` (position 1-based in the batch; `ARGV[4]` is how many it already holds), and puts an ``OversizeMarker`` in its
/// place — the ingester quarantines a bounded prefix with its length and SHA-256, read in chunks.
/// Batches stay in the hundreds: Lua's `unpack` fails near 8,000 values.
enum IngressMoveScript {
    static let source = """
        local count = tonumber(ARGV[1])
        local max_item = tonumber(ARGV[2] or '2097152')
        local max_batch = tonumber(ARGV[3] or '8388608')
        local offset = tonumber(ARGV[4] or '0')
        local taken = {}
        local bytes = 0
        for i = 1, count do
            local item = redis.call('LINDEX', KEYS[1], -i)
            if not item then break end
            local size = string.len(item)
            local aside = nil
            if size > max_item then
                aside = KEYS[2] .. ':oversize:' .. (offset + #taken + 1)
                local marker = '\\0conveyor-oversize:' .. size .. ':' .. aside
                if #taken > 0 and bytes + string.len(marker) > max_batch then break end
                redis.call('SET', aside, item)
                item = marker
                size = string.len(marker)
            elseif #taken > 0 and bytes + size > max_batch then
                break
            end
            taken[#taken + 1] = item
            bytes = bytes + size
        end
        local n = #taken
        if n > 0 then
            redis.call('LTRIM', KEYS[1], 0, -n - 1)
            redis.call('RPUSH', KEYS[2], unpack(taken))
            redis.call('SADD', KEYS[3], KEYS[2])
        end
        local result = { redis.call('LLEN', KEYS[1]) }
        for i = 1, n do result[#result + 1] = taken[i] end
        return result
        """

    /// The most bytes of one batch's envelopes, unless its first envelope alone is larger: 8 MiB.
    static let maxBatchBytes = 8 << 20

    /// `EVAL` arguments moving up to `count` envelopes from `keys.ingress` into `batch`, which already
    /// holds `offset` envelopes.
    static func arguments(keys: IngressKeys, batch: String, count: Int, offset: Int = 0) -> [Data] {
        [
            "EVAL", source, "3", keys.ingress, batch, keys.processingSet, String(count), String(Envelope.maxBytes),
            String(maxBatchBytes), String(offset),
        ].map { Data($0.utf8) }
    }
}

/// What the move script leaves in a batch in place of an envelope too large to carry:
/// `\0conveyor-oversize:<bytes>:<key>`, the envelope itself stored under `key`.
///
/// A producer could push such a string itself; the ingester trusts a marker only when its key is the
/// one the script would have written for that batch and position, and the key exists.
struct OversizeMarker: Equatable {
    /// The envelope's length in bytes.
    var bytes: Int
    /// Where the script stored it: `<batch>:oversize:<position>`.
    var key: String

    static let prefix = Data("\u{0}conveyor-oversize:".utf8)

    /// The marker in `item`, when it is one that the move script wrote for `batch` at `index` (0-based).
    init?(_ item: Data, batch: String, index: Int) {
        guard item.count < 1024, item.starts(with: Self.prefix) else { return nil }
        let rest = String(decoding: item.dropFirst(Self.prefix.count), as: UTF8.self)
        guard let colon = rest.firstIndex(of: ":"), let bytes = Int(rest[..<colon]) else { return nil }
        let key = String(rest[rest.index(after: colon)...])
        guard key == Self.key(batch: batch, index: index) else { return nil }
        self.bytes = bytes
        self.key = key
    }

    /// The key the script stores the envelope at position `index` (0-based) of `batch` under.
    static func key(batch: String, index: Int) -> String { "\(batch):oversize:\(index + 1)" }
}

/// The move script's source, for tools and tests that simulate an ingester.
public enum IngressMoveScriptSource {
    /// The Lua text (`KEYS`: ingress, batch list, processing set; `ARGV`: count, and optionally the
    /// largest envelope carried in a batch and a batch's byte cap).
    public static var text: String { IngressMoveScript.source }
}
