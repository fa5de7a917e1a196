public import ConveyorCore

/// Filters and paging for admin listings.
public struct JobFilter: Sendable, Equatable {
    /// Only jobs in this state.
    public var state: JobState?
    /// Only jobs of this kind.
    public var kind: String?
    /// Only jobs of this queue.
    public var queue: String?
    /// Only jobs inserted before the job with this insertion number (paging cursor).
    public var beforeSeq: Int?
    /// At most this many jobs. Default 50.
    public var limit: Int

    /// Creates a filter.
    public init(state: JobState? = nil, kind: String? = nil, queue: String? = nil, beforeSeq: Int? = nil, limit: Int = 50) {
        self.state = state
        self.kind = kind
        self.queue = queue
        self.beforeSeq = beforeSeq
        self.limit = limit
    }
}

/// Which jobs an admin action applies to.
public enum JobTarget: Sendable, Equatable {
    /// These jobs.
    case ids([UUID])
    /// Every eligible job of this kind.
    case kind(String)
    /// Every eligible job of this queue.
    case queue(String)
    /// Every eligible job.
    case all
}

public import Foundation
