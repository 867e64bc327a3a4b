import Foundation

/// Runs blocking work (SQLite transactions with fsync, hashing a finished upload, reading a
/// committed model's header) on a Dispatch thread instead of a Swift concurrency thread, so
/// that slow writes never starve the cooperative pool that serves every other request.
func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            continuation.resume(with: Result { try body() })
        }
    }
}
