import HTTPTypes
import Hummingbird

/// Bearer tokens on requests. A request without `Authorization` is anonymous (it may read
/// public repositories); one with a header that is not a live token is refused outright rather
/// than downgraded to anonymous, so that a typo never looks like a missing repository.
struct Authenticator: Sendable {
    let store: any MetadataStore

    func token(for request: Request) throws -> AccessToken? {
        guard let header = request.headers[.authorization] else { return nil }
        guard header.hasPrefix("Bearer ") else {
            throw challenge("InvalidToken", "the Authorization header must be 'Bearer <token>'")
        }
        let secret = header.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces)
        guard TokenSecret.isWellFormed(secret), let token = try store.token(secretDigest: TokenSecret.digest(secret)) else {
            throw challenge("InvalidToken", "the token is not valid (unknown, revoked or malformed)")
        }
        return token
    }

    /// The request's token, which must allow `scope`.
    func require(_ scope: TokenScope, _ request: Request) throws -> AccessToken {
        guard let token = try token(for: request) else {
            throw challenge("Unauthorized", "this request needs a token with scope '\(scope.rawValue)': send 'Authorization: Bearer <token>'")
        }
        guard token.allows(scope) else {
            throw APIError(.forbidden, code: "InsufficientScope",
                           "token '\(token.label)' of \(token.user) has scope '\(token.scope.rawValue)'; this request needs '\(scope.rawValue)'")
        }
        return token
    }

    private func challenge(_ code: String, _ message: String) -> APIError {
        var error = APIError(.unauthorized, code: code, message)
        error.headers[.wwwAuthenticate] = "Bearer"
        return error
    }
}
