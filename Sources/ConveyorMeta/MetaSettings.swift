public import ConveyorCore
public import ConveyorHTTPClient
public import Foundation

/// Meta's settings, shared by every Meta kind, from the environment.
public struct MetaSettings: Sendable, Equatable {
    /// The Graph version when `META_API_VERSION` is unset.
    public static let defaultAPIVersion = "v23.0"

    /// `META_GRAPH_BASE_URL`, default `https://graph.facebook.com` (the sandbox in tests and `ops/dev`).
    public var graphBaseURL: String
    /// `META_API_VERSION`, e.g. `v23.0`.
    public var apiVersion: String
    /// `META_ACCESS_TOKEN`: a system user's token. Never logged, never stored.
    public var accessToken: String?
    /// `META_APP_SECRET`: when set, every call carries `appsecret_proof`.
    public var appSecret: String?
    /// `META_PIXEL_ID`: the dataset conversions go to (a job may name its own).
    public var pixelID: String?
    /// `META_TEST_EVENT_CODE`: sends conversions to Events Manager's Test Events.
    public var testEventCode: String?

    public init(
        graphBaseURL: String = "https://graph.facebook.com", apiVersion: String = MetaSettings.defaultAPIVersion, accessToken: String? = nil,
        appSecret: String? = nil, pixelID: String? = nil, testEventCode: String? = nil
    ) {
        self.graphBaseURL = graphBaseURL
        self.apiVersion = apiVersion
        self.accessToken = accessToken
        self.appSecret = appSecret
        self.pixelID = pixelID
        self.testEventCode = testEventCode
    }

    /// A setting that cannot be used, named.
    public typealias Invalid = SettingError

    /// Reads the settings; a malformed one throws, naming it.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(Invalid) -> MetaSettings {
        func value(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        var settings = MetaSettings()
        if let base = value("META_GRAPH_BASE_URL") {
            guard let url = URL(string: base), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw Invalid(setting: "META_GRAPH_BASE_URL", reason: "must be an http(s) URL, got \(base)")
            }
            settings.graphBaseURL = base
        }
        if let version = value("META_API_VERSION") {
            guard version.range(of: #"^v[0-9]{1,3}\.[0-9]{1,2}$"#, options: .regularExpression) != nil else {
                throw Invalid(setting: "META_API_VERSION", reason: "must look like v23.0, got \(version)")
            }
            settings.apiVersion = version
        }
        settings.accessToken = value("META_ACCESS_TOKEN")
        settings.appSecret = value("META_APP_SECRET")
        if let pixel = value("META_PIXEL_ID") {
            guard pixel.allSatisfy(\.isNumber) else { throw Invalid(setting: "META_PIXEL_ID", reason: "must be digits, got \(pixel)") }
            settings.pixelID = pixel
        }
        settings.testEventCode = value("META_TEST_EVENT_CODE")
        return settings
    }

    /// The query parameters that authenticate a call: `access_token`, and `appsecret_proof` when the
    /// app secret is set. They travel in the query (Meta's documented form) and never in an error.
    public func authentication() -> [(String, String)]? {
        guard let accessToken else { return nil }
        var query = [("access_token", accessToken)]
        if let appSecret { query.append(("appsecret_proof", AppSecretProof.make(token: accessToken, appSecret: appSecret))) }
        return query
    }

    /// The upstream for Graph calls: `timeout` per request (CAPI: 1.5 s, as Meta recommends).
    public func upstream(name: String = "meta", timeout: Duration) -> Upstream.Settings {
        Upstream.Settings(name: name, baseURL: graphBaseURL, connectTimeout: .seconds(1), requestTimeout: timeout, maxResponseBytes: 2 << 20)
    }

    /// The limit key of a pixel's conversions: throttling pauses it.
    public static func pixelKey(_ pixelID: String) -> String { "meta-pixel:\(pixelID)" }
}
