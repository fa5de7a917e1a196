// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "conveyor",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "conveyor", targets: ["conveyor"]),
        .library(name: "Conveyor", targets: ["Conveyor"]),
        .library(name: "ConveyorCore", targets: ["ConveyorCore"]),
        .library(name: "ConveyorPostgres", targets: ["ConveyorPostgres"]),
        .library(name: "ConveyorWorker", targets: ["ConveyorWorker"]),
        // What a service needs to build its own `conveyor` with its kinds (examples/custom-conveyor).
        .library(name: "ConveyorCLI", targets: ["ConveyorCLI"]),
        .library(name: "ConveyorIngress", targets: ["ConveyorIngress"]),
        .library(name: "ConveyorMaintenance", targets: ["ConveyorMaintenance"]),
        .library(name: "ConveyorRedis", targets: ["ConveyorRedis"]),
        .library(name: "ConveyorBuiltinKinds", targets: ["ConveyorBuiltinKinds"]),
        .library(name: "ConveyorWeb", targets: ["ConveyorWeb"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // SHA-256 of quarantined envelopes; already built for PostgresNIO, so it adds no build time.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // The hooks listener of `conveyor web` and the sandbox; no traits (swift-configuration is not used).
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // ffmpeg and ffprobe for video.render, spawned without blocking the cooperative pool.
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
    ],
    targets: [
        // Pure types: job record, state machine, retry policy, handler protocols. No I/O.
        .target(
            name: "ConveyorCore",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The only place with SQL about jobs; migrations runner; the PostgreSQL client API.
        .target(
            name: "ConveyorPostgres",
            dependencies: [
                "ConveyorCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // hiredis 0.14 (libhiredis-dev), called through its Argv functions.
        // No pkgConfig: its -D_FILE_OFFSET_BITS=64 is dropped by SwiftPM with a warning; the headers live in
        // /usr/include/hiredis and the module map links libhiredis.
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        // A thread-confined async Redis connection.
        .target(name: "ConveyorRedis", dependencies: ["CHiredis"], swiftSettings: strict),
        // The Redis ingress: envelopes from any producer into PostgreSQL, exactly once.
        .target(
            name: "ConveyorIngress",
            dependencies: [
                "ConveyorCore", "ConveyorPostgres", "ConveyorRedis",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // The producers' Swift API: ConveyorClient (Redis envelopes, or PostgreSQL inside a transaction).
        .target(
            name: "Conveyor",
            dependencies: [
                "ConveyorCore", "ConveyorPostgres", "ConveyorRedis", "ConveyorIngress",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Producer / executor / completer, shutdown.
        .target(
            name: "ConveyorWorker",
            dependencies: [
                "ConveyorCore",
                "ConveyorPostgres",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // Leader election and leader-run maintenance (rescue of expired leases, pruning).
        .target(
            name: "ConveyorMaintenance",
            dependencies: [
                "ConveyorCore",
                "ConveyorPostgres",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // Built-in kinds for operations and benchmarks (conveyor.noop, .sleep, .fail).
        .target(
            name: "ConveyorBuiltinKinds",
            dependencies: ["ConveyorCore"],
            swiftSettings: strict
        ),
        // Outcome callbacks: `conveyor.callback` delivers a finished job's outcome to its producer's URL
        // (signed, allowlisted, no redirects) or Redis list.
        .target(
            name: "ConveyorCallbacks",
            dependencies: [
                "ConveyorCore",
                "ConveyorRedis",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The HTTP stack every kind that calls an API shares: AsyncHTTPClient with pooled keep-alive
        // connections, timeouts per API, a size cap, secret-free errors and a circuit breaker per upstream.
        .target(
            name: "ConveyorHTTPClient",
            dependencies: [
                "ConveyorCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // What Meta's kinds share: settings, the Graph error classification, usage headers, redaction,
        // user_data hashing, appsecret_proof.
        .target(
            name: "ConveyorMeta",
            dependencies: ["ConveyorCore", "ConveyorHTTPClient", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // Kind `meta.capi_event`: conversions to Meta's Conversions API, up to 1,000 per request.
        .target(
            name: "ConveyorKindMetaCAPI",
            dependencies: ["ConveyorCore", "ConveyorHTTPClient", "ConveyorMeta", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // Kind `meta.ad_change`: ad, ad set and campaign edits, coalesced and sent as Graph batch calls,
        // with guardrails, approvals and an audit trail in its own tables (migrations/meta_ads_*.sql).
        .target(
            name: "ConveyorKindMetaAds",
            dependencies: [
                "ConveyorCore", "ConveyorPostgres", "ConveyorHTTPClient", "ConveyorMeta",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["migrations"],
            swiftSettings: strict
        ),
        // Kinds `ml.record_prediction`, `ml.record_outcome`, `ml.retrain_check`, `ml.notify`: the CTR model's
        // feedback loop, an IRLS logistic regression in Swift, its tables in its own migrations (ml_*.sql).
        .target(
            name: "ConveyorKindML",
            dependencies: [
                "ConveyorCore", "ConveyorPostgres", "ConveyorHTTPClient",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["migrations"],
            swiftSettings: strict
        ),
        // Kind `video.render`: ffmpeg renders under a watchdog, durable progress, cancel, crash safety.
        .target(
            name: "ConveyorKindVideo",
            dependencies: [
                "ConveyorCore",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Kind `hubspot.deal_event` and its receiver, `POST /hooks/hubspot`.
        .target(
            name: "ConveyorKindHubSpot",
            dependencies: [
                "ConveyorCore", "ConveyorPostgres", "ConveyorHTTPClient", "ConveyorMeta",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // HubSpot and Meta played on loopback for tests and `ops/dev` (conveyor-sandbox).
        .target(
            name: "ConveyorSandbox",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "conveyor-sandbox",
            dependencies: ["ConveyorSandbox", .product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: strict
        ),
        // The dashboard and the HTTP server behind it and the processes' /metrics.
        .target(
            name: "ConveyorWeb",
            dependencies: [
                "ConveyorCore",
                "ConveyorPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Commands; the executable is a thin `main` around them.
        .target(
            name: "ConveyorCLI",
            dependencies: [
                "ConveyorCore",
                "ConveyorPostgres",
                "ConveyorWorker",
                "ConveyorMaintenance",
                "ConveyorBuiltinKinds",
                "ConveyorCallbacks",
                "ConveyorKindHubSpot",
                "ConveyorKindMetaCAPI",
                "ConveyorKindMetaAds",
                "ConveyorKindML",
                "ConveyorKindVideo",
                "ConveyorHTTPClient",
                "ConveyorRedis",
                "ConveyorIngress",
                "Conveyor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                "ConveyorWeb",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "conveyor",
            dependencies: ["ConveyorCLI"],
            swiftSettings: strict
        ),
        // A `conveyor` with test-only kinds (`test.abort` traps its process), built like a service's own
        // executable would be; the CLI tests run it.
        .executableTarget(
            name: "conveyor-test-worker",
            dependencies: ["ConveyorCLI", "ConveyorCore"],
            path: "Tests/ConveyorTestWorker"
        ),
        // The example of a service's own `conveyor` (examples/custom-conveyor, also a package of its own
        // for copying): built here so the tests run it.
        .executableTarget(
            name: "custom-conveyor",
            dependencies: ["ConveyorCLI", "Conveyor"],
            path: "examples/custom-conveyor/Sources/custom-conveyor",
            swiftSettings: strict
        ),
        .target(
            name: "ConveyorTestSupport",
            dependencies: [
                "ConveyorCore",
                "ConveyorPostgres",
                "ConveyorRedis",
                "ConveyorWorker",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ConveyorTestSupport"
        ),
        .testTarget(name: "ConveyorCoreTests", dependencies: ["ConveyorCore"]),
        .testTarget(
            name: "ConveyorPostgresTests",
            dependencies: ["ConveyorPostgres", "ConveyorTestSupport", .product(name: "PostgresNIO", package: "postgres-nio")]
        ),
        .testTarget(
            name: "ConveyorWorkerTests",
            dependencies: ["ConveyorWorker", "ConveyorBuiltinKinds", "ConveyorTestSupport", .product(name: "MetricsTestKit", package: "swift-metrics")]
        ),
        .testTarget(
            name: "ConveyorMaintenanceTests",
            dependencies: [
                "ConveyorMaintenance", "ConveyorWorker", "ConveyorBuiltinKinds", "ConveyorTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(name: "ConveyorTests", dependencies: ["Conveyor", "ConveyorTestSupport"]),
        .testTarget(
            name: "ConveyorIngressTests",
            dependencies: [
                "ConveyorIngress", "ConveyorWorker", "ConveyorBuiltinKinds", "ConveyorTestSupport",
                .product(name: "MetricsTestKit", package: "swift-metrics"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .testTarget(name: "ConveyorRedisTests", dependencies: ["ConveyorRedis", "ConveyorTestSupport"]),
        .testTarget(name: "ConveyorBuiltinKindsTests", dependencies: ["ConveyorBuiltinKinds"]),
        .testTarget(
            name: "ConveyorCLITests",
            dependencies: [
                "ConveyorCLI", "ConveyorTestSupport", "ConveyorWeb", "ConveyorCallbacks", "conveyor-test-worker", "custom-conveyor",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "ConveyorIntegrationsTests",
            dependencies: [
                "ConveyorHTTPClient", "ConveyorMeta", "ConveyorKindHubSpot", "ConveyorKindMetaCAPI", "ConveyorKindMetaAds", "ConveyorKindML", "ConveyorKindVideo", "ConveyorSandbox", "ConveyorWeb",
                "ConveyorWorker", "ConveyorMaintenance", "ConveyorTestSupport", "ConveyorCore", "ConveyorPostgres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ConveyorWebTests",
            dependencies: [
                "ConveyorWeb", "ConveyorWorker", "ConveyorTestSupport",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
