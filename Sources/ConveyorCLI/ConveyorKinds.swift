import ConveyorBuiltinKinds
import ConveyorCallbacks
import ConveyorCore
import ConveyorKindHubSpot
import ConveyorKindMetaAds
import ConveyorKindMetaCAPI
import ConveyorKindML
import ConveyorKindVideo
import ConveyorPostgres
import ConveyorRedis
import ConveyorWeb
import Foundation

/// The job kinds this binary ships, registered once for the worker and the enqueue defaults, and the
/// schedules they declare.
enum ConveyorKinds {
    /// Kinds an embedding executable adds (``ConveyorCommand/start(arguments:kinds:)``), for the
    /// commands run inside that call.
    @TaskLocal static var extra: @Sendable (inout HandlerRegistry) -> Void = { _ in }
    /// Schedules an embedding executable adds.
    @TaskLocal static var extraSchedules: [Schedule] = []

    /// The runtime's migrations and the shipped kinds' own (their tables), applied by `conveyor migrate`
    /// and required by the processes.
    static var migrator: Migrator { Migrator(migrations: Migrator.embedded.migrations + AdChangeLedger.migrations + MLStore.migrations) }

    /// The kinds; `store` is given by the processes that run jobs (kinds with tables of their own need it).
    static func registry(store: PostgresJobStore? = nil) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.registerBuiltinKinds()
        // A malformed setting stops `conveyor worker` at start (callbackSettings()); other commands only
        // need the kind to exist.
        registry.register(CallbackJob(settings: (try? callbackSettings()) ?? CallbackSettings()))
        // The platform's integrations (README "Integrations"): unconfigured, their jobs fail with the
        // missing setting named and are retried.
        registry.register(DealEventJob(settings: (try? HubSpotSettings.fromEnvironment()) ?? HubSpotSettings()))
        registry.register(chunk: CAPIEventJob(settings: (try? CAPISettings.fromEnvironment()) ?? CAPISettings()))
        registry.register(chunk: AdChangeJob(settings: (try? AdChangeSettings.fromEnvironment()) ?? AdChangeSettings(), store: store))
        let ml = (try? MLSettings.fromEnvironment()) ?? MLSettings()
        registry.register(chunk: RecordPredictionJob(store: store))
        registry.register(chunk: RecordOutcomeJob(store: store))
        registry.register(RetrainCheckJob(settings: ml, store: store))
        registry.register(NotifyJob(settings: ml))
        registry.register(VideoRenderJob(settings: (try? VideoSettings.fromEnvironment()) ?? VideoSettings()))
        extra(&registry)
        return registry
    }

    /// Outcome callbacks' settings from the environment: `CONVEYOR_CALLBACK_SECRET`,
    /// `CONVEYOR_CALLBACK_HOSTS`, and `REDIS_URL` for `reply_to`.
    static func callbackSettings() throws -> CallbackSettings {
        let environment = ProcessInfo.processInfo.environment
        var settings = CallbackSettings()
        settings.secret = environment["CONVEYOR_CALLBACK_SECRET"].flatMap { $0.isEmpty ? nil : $0 }
        do {
            settings.hosts = try CallbackSettings.parseHosts(environment["CONVEYOR_CALLBACK_HOSTS"] ?? "")
        } catch {
            throw CommandError.configuration(setting: error.setting, reason: error.reason)
        }
        if let url = environment["REDIS_URL"], !url.isEmpty { settings.redis = try? RedisConfiguration(url: url) }
        return settings
    }

    /// Checks the integrations' settings (`conveyor worker` and `conveyor web` stop at start, naming a
    /// malformed one).
    static func checkIntegrationSettings() throws {
        do {
            _ = try HubSpotSettings.fromEnvironment()
            _ = try CAPISettings.fromEnvironment()
            _ = try AdChangeSettings.fromEnvironment()
            _ = try MLSettings.fromEnvironment()
            _ = try VideoSettings.fromEnvironment()
        } catch {
            throw CommandError.configuration(setting: error.setting, reason: error.reason)
        }
    }

    /// The hooks `conveyor web` serves on its hooks address: HubSpot's, keyed by `HUBSPOT_CLIENT_SECRET`.
    static func hooks(store: PostgresJobStore) throws -> [any WebHook] {
        try checkIntegrationSettings()
        guard let secret = try HubSpotSettings.fromEnvironment().clientSecret else {
            throw CommandError.configuration(
                setting: "HUBSPOT_CLIENT_SECRET", reason: "is not set: the hooks listener checks HubSpot's signatures with it")
        }
        let registry = registry()
        return [HubSpotReceiver(store: store, secret: secret, maxAttempts: { registry.defaultMaxAttempts(for: $0) })]
    }

    /// The dashboard pages of the shipped kinds.
    static func panels(store: PostgresJobStore) -> [any DashboardPanel] {
        [AdChangesPanel(ledger: AdChangeLedger(store: store)), RetrainingPanel(store: MLStore(store: store))]
    }

    /// The schedules declared in code (overridable with `CONVEYOR_SCHEDULES`). The platform's kinds add
    /// theirs here (the retraining check: daily at 02:00 UTC).
    static func schedules() throws -> [Schedule] {
        try extraSchedules + [
            // The CTR model's daily accuracy check (README "The retraining loop").
            RetrainCheckJob.schedule(),
            // A canary through the whole pipeline: if its jobs stop completing every five minutes,
            // something between the scheduler and the workers is broken.
            Schedule(name: "conveyor.canary", cron: "*/5 * * * *", kind: "conveyor.noop", args: #"{"canary":true}"#),
        ]
    }
}
