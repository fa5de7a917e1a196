import ArgumentParser
import ConveyorMaintenance

/// The leader-run maintenance settings, shared by every process that takes part in the election
/// (`worker` and `scheduler`): whichever process leads prunes with the same retention.
struct MaintenanceOptions: ParsableArguments {
    @Option(name: .customLong("leader-ttl"), help: "Seconds the maintenance leader's lease lasts; another process takes over this long after the leader dies (env: CONVEYOR_LEADER_TTL; default 15).")
    var leaderTTL: Double?

    @Option(name: .customLong("retention-completed"), help: "How long completed and cancelled jobs are kept, e.g. 24h, 7d, off (env: CONVEYOR_RETENTION_COMPLETED; default 24h).")
    var retentionCompleted: String?

    @Option(name: .customLong("retention-dead"), help: "How long dead jobs are kept, e.g. 30d, off (env: CONVEYOR_RETENTION_DEAD; default 30d).")
    var retentionDead: String?

    @Option(name: .customLong("retention-rejected"), help: "How long quarantined envelopes are kept, e.g. 30d, off (env: CONVEYOR_RETENTION_REJECTED; default 30d).")
    var retentionRejected: String?

    @Option(name: .customLong("max-rescues"), help: "Times a job may lose its worker (lease expired) before it is dead-lettered (env: CONVEYOR_MAX_RESCUES; default 3).")
    var maxRescues: Int?

    @Option(
        name: .customLong("rescue-delay"),
        help: "Seconds a rescued job waits before it runs again, instead of the default backoff (16 s, 31 s, 96 s… by attempt) (env: CONVEYOR_RESCUE_DELAY).")
    var rescueDelay: Double?

    /// The leader lease's length.
    func ttl() throws -> Duration {
        try Settings.seconds(leaderTTL, env: "CONVEYOR_LEADER_TTL", flagName: "--leader-ttl", default: 15, range: 1...3600)
    }

    /// The maintenance configuration of a process named `holder` in the election.
    func configuration(holder: String) throws -> Maintenance.Configuration {
        let ttl = try ttl()
        var configuration = Maintenance.Configuration(
            election: LeaderElection.Configuration(holder: holder, ttl: ttl, renewInterval: ttl / 3),
            finishedRetention: try Settings.duration(
                retentionCompleted, env: "CONVEYOR_RETENTION_COMPLETED", flagName: "--retention-completed", default: .seconds(86_400)),
            deadRetention: try Settings.duration(
                retentionDead, env: "CONVEYOR_RETENTION_DEAD", flagName: "--retention-dead", default: .seconds(30 * 86_400)),
            rejectedRetention: try Settings.duration(
                retentionRejected, env: "CONVEYOR_RETENTION_REJECTED", flagName: "--retention-rejected", default: .seconds(30 * 86_400)))
        configuration.maxRescues = try Settings.int(maxRescues, env: "CONVEYOR_MAX_RESCUES", flagName: "--max-rescues", default: 3, range: 1...1000)
        if rescueDelay != nil || Settings.string(nil, env: "CONVEYOR_RESCUE_DELAY") != nil {
            let delay = try Settings.seconds(rescueDelay, env: "CONVEYOR_RESCUE_DELAY", flagName: "--rescue-delay", default: 0, range: 0...86_400)
            configuration.rescueBackoff = { _ in delay }
        }
        return configuration
    }
}
