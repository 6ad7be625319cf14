import Foundation
public import Logging

/// Loads the stack's YAML configuration (docs/configuration.md): parse with Yams, check every key
/// against the schema, lay `EKEY_*` environment variables over it, then read typed values.
///
/// ```swift
/// let path = try ConfigLoader.resolvePath(flag: config, environment: ProcessInfo.processInfo.environment)
/// let loaded = try ConfigLoader.load(path: path, environment: ProcessInfo.processInfo.environment)
/// loaded.log(to: logger)
/// let gateway = try loaded.config.require(GatewayConfig.self)
/// ```
///
/// Every problem is collected and thrown together as ``ConfigErrors``.
public enum ConfigLoader {
    /// The environment variable naming the file when `--config` is not given.
    public static let fileVariable = "EKEY_CONFIG"

    /// The config file to use: `--config FILE` if given, else `EKEY_CONFIG`.
    /// - Throws: ``ConfigError`` when neither names a file.
    public static func resolvePath(flag: String?, environment: [String: String]) throws(ConfigError) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let value = environment[fileVariable], !value.isEmpty { return value }
        throw ConfigError(
            path: "", message: "no config file given; pass --config FILE or set EKEY_CONFIG=FILE (see docs/configuration.md)")
    }

    /// Loads the file at `path` with the `EKEY_*` overrides of `environment`.
    /// Relative paths in the file are resolved from the file's folder.
    /// - Throws: ``ConfigErrors`` listing every problem found.
    public static func load(path: String, environment: [String: String]) throws(ConfigErrors) -> LoadedConfig {
        let absolute = absolutePath(path)
        let text: String
        do {
            text = try String(contentsOfFile: absolute, encoding: .utf8)
        } catch {
            throw ConfigErrors([ConfigError(
                path: "",
                message: "cannot read \(absolute): \(Self.reason(error)); pass an existing file with --config or EKEY_CONFIG")])
        }
        var loaded = try load(
            yaml: text, baseDirectory: (absolute as NSString).deletingLastPathComponent, environment: environment)
        loaded.path = absolute
        return loaded
    }

    /// Loads configuration text; relative paths are resolved from `baseDirectory`.
    /// - Throws: ``ConfigErrors`` listing every problem found.
    public static func load(
        yaml: String, baseDirectory: String, environment: [String: String] = [:]
    ) throws(ConfigErrors) -> LoadedConfig {
        var tree: ConfigNode
        do {
            tree = try ConfigNode.parse(yaml: yaml)
        } catch {
            throw ConfigErrors([error])
        }
        var errors: [ConfigError] = []
        var warnings: [String] = []

        // Unknown keys and wrong shapes in the file itself, before the environment hides them.
        var fileShape = ShapeChecker()
        fileShape.check(tree, against: ConfigSchema.root, path: "")
        errors += fileShape.errors

        var overrides = EnvironmentOverrides()
        overrides.apply(environment, to: &tree)
        errors += overrides.errors
        warnings += overrides.warnings

        // Values that came from the environment get the same check.
        var mergedShape = ShapeChecker()
        mergedShape.check(tree, against: ConfigSchema.root, path: "")
        errors += mergedShape.errors.filter { !errors.contains($0) }
        let badPaths = Set(mergedShape.errors.map(\.path))

        let context = ReadContext(baseDirectory: absolutePath(baseDirectory), badPaths: badPaths)
        let usable = tree.pruned(at: badPaths, path: "")
        let config = SectionReader.stack(
            MapReader(path: "", node: usable, schema: ConfigSchema.root, context: context))
        errors += context.errors
        warnings += context.warnings
        for (name, tls) in [("issuer", config.issuer?.tls), ("gateway", config.gateway?.tls), ("jwks", config.jwks?.tls)]
        where tls?.isPlaintext == true {
            warnings.append("\(name).tls is none: ekey-\(name) listens in plaintext; use this for local debugging only")
        }
        if config.gateway != nil, !config.store.isExplicit {
            warnings.append(StoreConfig.implicitMemoryWarning)
        }
        guard errors.isEmpty else { throw ConfigErrors(errors) }
        return LoadedConfig(config: config, warnings: warnings)
    }

    private static func absolutePath(_ path: String) -> String {
        let expanded = (path as NSString).expandingTildeInPath
        if expanded.hasPrefix("/") { return (expanded as NSString).standardizingPath }
        let cwd = FileManager.default.currentDirectoryPath
        return ((cwd as NSString).appendingPathComponent(expanded) as NSString).standardizingPath
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if nsError.domain == NSCocoaErrorDomain, nsError.code == NSFileReadNoSuchFileError { return "no such file" }
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError {
            return underlying.localizedDescription
        }
        return nsError.localizedDescription
    }
}

extension LoadedConfig {
    /// Logs every warning at `warning` level; call once at start.
    public func log(to logger: Logger) {
        for warning in warnings {
            logger.warning("\(warning)", metadata: path.map { ["config": "\($0)"] } ?? [:])
        }
    }
}

extension ConfigNode {
    /// The tree without nodes whose shape was refused, so that reading reports each problem once.
    /// A refused list item becomes an empty list, which no reader takes, so indexes stay put.
    func pruned(at badPaths: Set<String>, path: String) -> ConfigNode? {
        if badPaths.contains(path) && !path.isEmpty { return nil }
        switch self {
        case .scalar:
            return self
        case .list(let items, let origin):
            var kept: [ConfigNode] = []
            for (index, item) in items.enumerated() {
                let childPath = path.isEmpty ? String(index) : "\(path).\(index)"
                kept.append(item.pruned(at: badPaths, path: childPath) ?? .list([], origin: item.origin))
            }
            return .list(kept, origin: origin)
        case .map(let entries, let origin):
            return .map(
                entries.compactMap { key, value in
                    let childPath = path.isEmpty ? key : "\(path).\(key)"
                    return value.pruned(at: badPaths, path: childPath).map { (key, $0) }
                }, origin: origin)
        }
    }
}
