// swift-tools-version:6.2
import PackageDescription

/// Compiler settings shared by every target (see STYLE.md §1.1).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "ekey",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ekey-issuer", targets: ["EKeyIssuerMain"]),
        .executable(name: "ekey-gateway", targets: ["EKeyGatewayMain"]),
        .executable(name: "ekey-jwks", targets: ["EKeyJWKSMain"]),
        .executable(name: "ekey", targets: ["EKeyCLI"]),
        .executable(name: "ekey-bench", targets: ["EKeyBench"]),
        .executable(name: "ekey-store-bench", targets: ["EKeyStoreBench"]),
        .library(name: "EKeyProtocol", targets: ["EKeyProtocol"]),
        .library(name: "EKeyClient", targets: ["EKeyClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
    ],
    targets: [
        // MARK: Protocol: JOSE, E-Key tokens, DPoP, capabilities. No networking.
        .target(
            name: "EKeyProtocol",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto")
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Store: usage counters and replay caches (memory and Redis over hiredis + NIO).
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "EKeyStore",
            dependencies: [
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Redis/Scripts/README.md"],
            resources: [
                .embedInCode("Redis/Scripts/consume.lua"),
                .embedInCode("Redis/Scripts/refund.lua"),
                .embedInCode("Redis/Scripts/rate_limit.lua"),
                .embedInCode("Redis/Scripts/key_registry_put.lua"),
                .embedInCode("Redis/Scripts/key_registry_import.lua"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Server plumbing shared by the three services.
        .target(
            name: "EKeyServer",
            dependencies: [
                "EKeyProtocol",
                "EKeyStore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Service logic, one library per service.
        .target(name: "EKeyIssuer", dependencies: ["EKeyProtocol", "EKeyStore", "EKeyServer"], swiftSettings: swiftSettings),
        .target(name: "EKeyGateway", dependencies: ["EKeyProtocol", "EKeyStore", "EKeyServer"], swiftSettings: swiftSettings),
        .target(name: "EKeyJWKS", dependencies: ["EKeyProtocol", "EKeyStore", "EKeyServer"], swiftSettings: swiftSettings),

        // MARK: Client SDK used by the CLI, the load generator and the tests.
        .target(name: "EKeyClient", dependencies: ["EKeyProtocol"], swiftSettings: swiftSettings),

        // MARK: Executables: thin entry points.
        .executableTarget(
            name: "EKeyIssuerMain",
            dependencies: ["EKeyIssuer", "EKeyServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EKeyGatewayMain",
            dependencies: ["EKeyGateway", "EKeyServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EKeyJWKSMain",
            dependencies: ["EKeyJWKS", "EKeyServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EKeyCLI",
            dependencies: [
                "EKeyClient", "EKeyProtocol", "EKeyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Benchmarks (loadtest/).
        .executableTarget(
            name: "EKeyBench",
            dependencies: [
                "EKeyProtocol", "EKeyClient",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "loadtest/Sources/EKeyBench",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "EKeyStoreBench",
            dependencies: [
                "EKeyStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "loadtest/Sources/EKeyStoreBench",
            swiftSettings: swiftSettings
        ),

        // MARK: Tests.
        .target(
            name: "EKeyTestSupport",
            dependencies: ["EKeyProtocol"],
            path: "Tests/EKeyTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EKeyProtocolTests",
            dependencies: ["EKeyProtocol", "EKeyClient", "EKeyTestSupport", .product(name: "Crypto", package: "swift-crypto")],
            resources: [.copy("Vectors"), .copy("Interop")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EKeyStoreTests",
            dependencies: [
                "EKeyStore", "EKeyTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
