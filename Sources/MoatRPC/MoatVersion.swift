/// The version of Moat: the daemon, the client and the CLI ship together.
public enum MoatVersion {
    /// The version string reported by Health and `--version`.
    public static let current = "0.1.0"
}
