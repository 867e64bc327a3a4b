/// The code version written into every record this build produces (lineage names it). It is
/// part of every build stage's cache key, so it changes whenever what a stage writes changes:
/// 0.2.0 writes variants transformers can load (`PortableConfig`), which 0.1.0's did not.
public enum HubVersion {
    public static let current = "0.2.0"
}
