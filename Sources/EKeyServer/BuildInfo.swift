/// Build facts every E-Key executable reports (`--version`, logs, metrics).
public enum BuildInfo {
    /// The E-Key release this binary belongs to.
    public static let version = "0.1.0"
}
