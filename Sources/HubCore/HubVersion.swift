/// The code version written into every record this build produces (lineage names it).
public enum HubVersion {
    public static let current = "0.1.0"
}
