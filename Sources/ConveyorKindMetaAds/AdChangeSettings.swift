public import ConveyorCore
public import ConveyorMeta
public import Foundation

/// Per ad account limits on what `meta.ad_change` sends (`META_ADS_GUARDRAILS`).
public struct Guardrails: Sendable, Equatable {
    /// A budget change larger than this share of the current budget waits for approval. Default 0.5
    /// (halving or raising by half is allowed; more needs a person).
    public var maxBudgetChange: Double
    /// The smallest daily budget per currency, in major units. Defaults: 1 in USD, EUR, GBP and most
    /// currencies of offset 100, 100 JPY, 1,000 KRW; unlisted currencies only need more than zero.
    public var minDailyBudget: [String: Decimal]
    /// Budget changes per ad set per rolling hour: Meta blocks the ad set's budget for an hour after
    /// the fourth (api-notes §C.5). At most 4.
    public var budgetChangesPerHour: Int
    /// Record what would be sent, send nothing.
    public var dryRun: Bool

    public static let defaultMinimums: [String: Decimal] = [
        "USD": 1, "EUR": 1, "GBP": 1, "CAD": 1, "AUD": 1, "CHF": 1, "JPY": 100, "KRW": 1000, "BRL": 1, "INR": 40,
    ]

    public init(maxBudgetChange: Double = 0.5, minDailyBudget: [String: Decimal] = Guardrails.defaultMinimums, budgetChangesPerHour: Int = 4, dryRun: Bool = false) {
        self.maxBudgetChange = maxBudgetChange
        self.minDailyBudget = minDailyBudget
        self.budgetChangesPerHour = min(max(1, budgetChangesPerHour), 4)
        self.dryRun = dryRun
    }
}

/// `meta.ad_change`'s settings.
public struct AdChangeSettings: Sendable {
    public var meta: MetaSettings
    /// Guardrails for accounts not named in ``accounts``.
    public var defaults: Guardrails
    /// Guardrails per ad account (`act_…`).
    public var accounts: [String: Guardrails]
    /// Per batch call. Default 30 s: Meta runs a batch's operations in parallel, but a big one is slow.
    public var timeout: Duration
    /// How long a throttled account waits when Meta gives no estimate. Default 5 minutes.
    public var defaultThrottle: Duration
    /// How long a partial chunk of changes waits to fill. Default 2 s: edits come in bursts.
    public var linger: Duration
    /// The most changes per chunk. Default 1,000.
    public var chunkSize: Int
    /// Attempts and backoff for 5xx, timeouts and transient errors. Default 10, from 10 s doubling to 30 minutes.
    public var retry: RetryPolicy

    public init(
        meta: MetaSettings = MetaSettings(), defaults: Guardrails = Guardrails(), accounts: [String: Guardrails] = [:], timeout: Duration = .seconds(30),
        defaultThrottle: Duration = .seconds(300), linger: Duration = .seconds(2), chunkSize: Int = 1000,
        retry: RetryPolicy = RetryPolicy(maxAttempts: 10, backoff: RetryPolicy.exponential(base: .seconds(10), cap: .seconds(1800)))
    ) {
        self.meta = meta
        self.defaults = defaults
        self.accounts = accounts
        self.timeout = timeout
        self.defaultThrottle = defaultThrottle
        self.linger = linger
        self.chunkSize = chunkSize
        self.retry = retry
    }

    public func guardrails(for account: String) -> Guardrails { accounts[account] ?? defaults }

    /// From the environment: ``MetaSettings/fromEnvironment(_:)``, `META_ADS_GUARDRAILS`,
    /// `META_ADS_DRY_RUN`, `META_ADS_TIMEOUT_MS`.
    ///
    /// `META_ADS_GUARDRAILS` is JSON: `{"default": {"max_budget_change": 0.3}, "act_123": {"dry_run": true,
    /// "min_daily_budget": {"USD": 5}}}`; an account's entry starts from the default's.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(MetaSettings.Invalid) -> AdChangeSettings {
        var settings = AdChangeSettings(meta: try MetaSettings.fromEnvironment(environment))
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let text = value("META_ADS_DRY_RUN") {
            switch text.lowercased() {
            case "1", "true", "yes", "on": settings.defaults.dryRun = true
            case "0", "false", "no", "off": settings.defaults.dryRun = false
            default: throw MetaSettings.Invalid(setting: "META_ADS_DRY_RUN", reason: "must be true or false, got \(text)")
            }
        }
        if let text = value("META_ADS_TIMEOUT_MS") {
            guard let ms = Int(text), (1000...300_000).contains(ms) else {
                throw MetaSettings.Invalid(setting: "META_ADS_TIMEOUT_MS", reason: "must be 1000–300000 milliseconds, got \(text)")
            }
            settings.timeout = .milliseconds(ms)
        }
        if let text = value("META_ADS_GUARDRAILS") {
            do {
                try settings.parseGuardrails(text)
            } catch {
                throw MetaSettings.Invalid(setting: "META_ADS_GUARDRAILS", reason: error.reason)
            }
        }
        return settings
    }

    mutating func parseGuardrails(_ text: String) throws(AdChange.Invalid) {
        guard case .object(let object)? = try? JSONParser.parse(text) else { throw AdChange.Invalid("must be a JSON object of ad accounts (and \"default\")") }
        if let entry = object["default"] { defaults = try Self.guardrails(entry, base: defaults, name: "default") }
        for (account, entry) in object where account != "default" {
            guard account.hasPrefix("act_"), account.count > 4, account.dropFirst(4).allSatisfy(\.isASCIIDigit) else {
                throw AdChange.Invalid("\(account) is not an ad account id (act_ and digits) or \"default\"")
            }
            accounts[account] = try Self.guardrails(entry, base: defaults, name: account)
        }
    }

    static func guardrails(_ value: JSONValue, base: Guardrails, name: String) throws(AdChange.Invalid) -> Guardrails {
        guard case .object(let fields) = value else { throw AdChange.Invalid("\(name) must be an object") }
        var result = base
        for (key, value) in fields {
            switch (key, value) {
            case ("max_budget_change", .number(let share)) where share > 0 && share <= 10: result.maxBudgetChange = share
            case ("max_budget_change", .integer(let share)) where share > 0 && share <= 10: result.maxBudgetChange = Double(share)
            case ("budget_changes_per_hour", .integer(let count)) where (1...4).contains(count): result.budgetChangesPerHour = Int(count)
            case ("dry_run", .bool(let flag)): result.dryRun = flag
            case ("min_daily_budget", .object(let minimums)):
                for (currency, amount) in minimums {
                    let number: Decimal? =
                        switch amount {
                        case .integer(let value): Decimal(value)
                        case .number(let value): Decimal(string: String(value))
                        default: nil
                        }
                    guard currency.count == 3, let number, number >= 0 else { throw AdChange.Invalid("\(name).min_daily_budget.\(currency) must be an amount in major units") }
                    result.minDailyBudget[currency] = number
                }
            default:
                throw AdChange.Invalid(
                    "\(name).\(key) is not a guardrail or has the wrong type (max_budget_change: share 0–10, budget_changes_per_hour: 1–4, dry_run: bool, min_daily_budget: {currency: amount})"
                )
            }
        }
        return result
    }
}
