import ConveyorCore
import Foundation

/// Stable ids for envelopes that carry none, derived from the ingest batch and the envelope's position.
///
/// A batch's processing list never changes after it is filled, so re-ingesting a recovered batch
/// derives the same ids and `ON CONFLICT DO NOTHING` keeps each envelope to one row.
enum DerivedID {
    /// The id of envelope `index` of `batch`.
    static func make(batch: String, index: Int) -> UUID {
        StableID.make("\(batch)#\(index)")
    }
}
