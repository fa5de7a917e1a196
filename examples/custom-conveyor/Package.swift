// swift-tools-version: 6.0
// A service's own `conveyor`: the stock commands (worker, scheduler, migrate, web, jobs…) plus its
// kinds and schedules. Copy this folder into your service and point the dependency at Conveyor's
// repository (`.package(url: "…/conveyor.git", from: "…")`); here it uses the checkout it lives in.
import PackageDescription

let package = Package(
    name: "custom-conveyor",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "conveyor", path: "../..")],
    targets: [
        .executableTarget(
            name: "custom-conveyor",
            dependencies: [
                .product(name: "ConveyorCLI", package: "conveyor"),
                .product(name: "Conveyor", package: "conveyor"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
