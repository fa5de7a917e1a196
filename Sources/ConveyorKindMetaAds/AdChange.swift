public import ConveyorCore
public import Foundation

/// One requested edit of a Meta ad, ad set or campaign, validated: the args of a `meta.ad_change` job.
///
/// ```json
/// {"ad_account_id": "act_123", "object_type": "adset", "object_id": "120200000001", "campaign_id": "120100000001",
///  "change": {"daily_budget": {"amount": 25.00, "currency": "USD"}},
///  "requested_at": "2026-12-02T09:30:00Z", "requested_by": "gateway:alice"}
/// ```
/// `change` holds exactly one of `status` (`ACTIVE` | `PAUSED`), `daily_budget`, `lifetime_budget`,
/// `bid_amount` (each `{amount, currency}` in major units) or `name`.
public struct AdChange: Sendable, Equatable {
    public enum ObjectType: String, Sendable, CaseIterable {
        case ad, adset, campaign
    }

    public enum Field: String, Sendable, CaseIterable, Comparable {
        case status
        case dailyBudget = "daily_budget"
        case lifetimeBudget = "lifetime_budget"
        case bidAmount = "bid_amount"
        case name

        public static func < (lhs: Field, rhs: Field) -> Bool { lhs.rawValue < rhs.rawValue }

        public var isBudget: Bool { self == .dailyBudget || self == .lifetimeBudget }
        public var isMoney: Bool { isBudget || self == .bidAmount }
    }

    /// `act_` and digits.
    public var adAccountID: String
    public var objectType: ObjectType
    public var objectID: String
    /// Required for ad sets (Meta refuses two ad sets of one campaign in one batch).
    public var campaignID: String?
    public var field: Field
    /// As Meta takes it: `ACTIVE`, `2000` (minor units), a name.
    public var value: String
    /// For money fields: the ISO currency the amount was given in.
    public var currency: String?
    /// For money fields: the amount as given, in major units (for messages).
    public var majorAmount: Decimal?
    public var requestedAt: Date
    public var requestedBy: String?

    /// The limit key of an ad account's changes: a throttled account pauses it.
    public static func limitKey(_ adAccountID: String) -> String { "meta-ad-account:\(adAccountID)" }

    /// Validates a job's args; the error names what is wrong (the job is dead at once with it).
    public static func parse(_ args: JSONValue) -> Result<AdChange, Invalid> {
        guard case .object(let fields) = args else { return .failure(Invalid("args must be a JSON object")) }
        guard case .string(let rawAccount)? = fields["ad_account_id"] else { return .failure(Invalid("ad_account_id is required (act_ and digits)")) }
        let account = rawAccount.hasPrefix("act_") ? rawAccount : "act_" + rawAccount
        guard account.count > 4, account.dropFirst(4).allSatisfy(\.isASCIIDigit) else {
            return .failure(Invalid("ad_account_id must be act_ and digits, got \(rawAccount)"))
        }
        guard case .string(let typeText)? = fields["object_type"], let type = ObjectType(rawValue: typeText) else {
            return .failure(Invalid("object_type must be ad, adset or campaign"))
        }
        guard let objectID = digits(fields["object_id"]) else { return .failure(Invalid("object_id is required (digits)")) }
        let campaignID = digits(fields["campaign_id"])
        if type == .adset, campaignID == nil {
            return .failure(Invalid("campaign_id is required for an ad set: Meta refuses two ad sets of one campaign in one batch"))
        }
        if fields["campaign_id"] != nil, fields["campaign_id"] != .null, campaignID == nil {
            return .failure(Invalid("campaign_id must be digits"))
        }
        guard case .object(let change)? = fields["change"], change.count == 1, let (key, value) = change.first else {
            return .failure(Invalid("change must be an object with exactly one of status, daily_budget, lifetime_budget, bid_amount, name"))
        }
        guard let field = Field(rawValue: key) else {
            return .failure(Invalid("change.\(key) is not a field this kind changes (status, daily_budget, lifetime_budget, bid_amount, name)"))
        }
        if field.isBudget, type == .ad { return .failure(Invalid("an ad has no \(field.rawValue): budgets live on ad sets and campaigns")) }
        if field == .bidAmount, type != .adset { return .failure(Invalid("bid_amount is set on ad sets")) }
        guard case .string(let requestedText)? = fields["requested_at"], let requestedAt = RFC3339.parse(requestedText) else {
            return .failure(Invalid("requested_at is required (RFC 3339, e.g. 2026-12-02T09:30:00Z): the latest request wins"))
        }
        var requestedBy: String?
        if case .string(let by)? = fields["requested_by"] { requestedBy = String(by.prefix(200)) }
        var result = AdChange(
            adAccountID: account, objectType: type, objectID: objectID, campaignID: campaignID, field: field, value: "", requestedAt: requestedAt,
            requestedBy: requestedBy)
        switch field {
        case .status:
            guard case .string(let status) = value, ["ACTIVE", "PAUSED"].contains(status) else {
                return .failure(Invalid("change.status must be ACTIVE or PAUSED"))
            }
            result.value = status
        case .name:
            guard case .string(let name) = value, !name.trimmingCharacters(in: .whitespaces).isEmpty, name.count <= 400, !name.contains("\u{0}") else {
                return .failure(Invalid("change.name must be a non-empty string of at most 400 characters"))
            }
            result.value = name
        case .dailyBudget, .lifetimeBudget, .bidAmount:
            switch Money.minorUnits(value) {
            case .failure(let problem): return .failure(Invalid("change.\(field.rawValue): \(problem.reason)"))
            case .success(let money):
                result.value = String(money.minor)
                result.currency = money.currency
                result.majorAmount = money.major
            }
        }
        return .success(result)
    }

    static func digits(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let text)? where !text.isEmpty && text.count <= 32 && text.allSatisfy(\.isASCIIDigit): text
        case .integer(let number)? where number > 0: String(number)
        default: nil
        }
    }

    /// Why args are refused.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { reason }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

/// Money as Meta's Marketing API takes it: minor units of the ad account's currency (api-notes §C.6).
public enum Money {
    /// Currencies whose offset is 1 (Meta's currencies page): the amount is sent as is.
    public static let offsetOne: Set<String> = ["CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD"]

    /// `amount_in_api = major × offset`: 100 for most currencies, 1 for those of ``offsetOne``.
    public static func offset(_ currency: String) -> Int { offsetOne.contains(currency) ? 1 : 100 }

    /// `{amount, currency}` (amount a number or a decimal string, in major units) in minor units.
    static func minorUnits(_ value: JSONValue) -> Result<(minor: Int64, currency: String, major: Decimal), AdChange.Invalid> {
        guard case .object(let money) = value else { return .failure(.init("must be {amount, currency} in major units")) }
        guard case .string(let currency)? = money["currency"], currency.count == 3, currency.allSatisfy({ $0.isASCII && $0.isUppercase }) else {
            return .failure(.init("currency must be an ISO 4217 code such as USD or JPY"))
        }
        let text: String
        switch money["amount"] {
        case .integer(let number)?: text = String(number)
        case .number(let number)?: text = String(number)
        case .string(let string)?: text = string
        default: return .failure(.init("amount is required, in major units (25.50 USD, 1500 JPY)"))
        }
        guard text.range(of: #"^[0-9]{1,12}(\.[0-9]{1,6})?$"#, options: .regularExpression) != nil, let major = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
            return .failure(.init("amount must be a positive decimal in major units, got \(text)"))
        }
        let offset = offset(currency)
        var minor = major * Decimal(offset)
        var rounded = Decimal()
        NSDecimalRound(&rounded, &minor, 0, .plain)
        guard rounded == minor else {
            return .failure(.init("\(text) \(currency) is not a whole number of \(currency)'s smallest unit (offset \(offset))"))
        }
        let value = NSDecimalNumber(decimal: rounded).int64Value
        guard value > 0 else { return .failure(.init("amount must be more than zero")) }
        return .success((value, currency, major))
    }

    /// `2000` minor units of USD as `20.00 USD`, of JPY as `2000 JPY`.
    public static func describe(minor: Int64, currency: String) -> String {
        let offset = offset(currency)
        if offset == 1 { return "\(minor) \(currency)" }
        let sign = minor < 0 ? "-" : ""
        let magnitude = abs(minor)
        let cents = magnitude % 100
        return "\(sign)\(magnitude / 100).\(cents < 10 ? "0" : "")\(cents) \(currency)"
    }
}
