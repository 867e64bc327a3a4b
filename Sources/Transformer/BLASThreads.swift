import COpenBLAS

/// The runtime's thread setting. OpenBLAS keeps one global pool, so this is process-wide.
public enum BLASThreads {
    public static var count: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }
}
