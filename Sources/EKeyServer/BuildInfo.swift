/// Build facts every E-Key executable reports (`--version`, logs, metrics).
public enum BuildInfo {
    /// The E-Key release this binary belongs to.
    public static let release = "0.1.0"

    /// `release+commit`, such as `0.1.0+e367f3e` (with `-dirty` for uncommitted changes);
    /// just `release` when the build had no git description (`gitDescription` is written
    /// by the build plugin from `git describe`).
    public static let version = gitDescription == "unknown" ? release : "\(release)+\(gitDescription)"
}
