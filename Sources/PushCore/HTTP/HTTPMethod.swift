/// A request method (RFC 9110 §9). Method names are case-sensitive: `GET` is ``get``, while
/// `get` is `.other("get")`. Any token is accepted by the parser; routing decides on 405/501.
public enum HTTPMethod: Equatable, Sendable {
    /// `GET` (RFC 9110 §9.3.1).
    case get
    /// `HEAD` (RFC 9110 §9.3.2).
    case head
    /// `POST` (RFC 9110 §9.3.3).
    case post
    /// `PUT` (RFC 9110 §9.3.4).
    case put
    /// `DELETE` (RFC 9110 §9.3.5).
    case delete
    /// `OPTIONS` (RFC 9110 §9.3.7).
    case options
    /// `PATCH` (RFC 5789).
    case patch
    /// Any other method token, exactly as sent (e.g. `CONNECT`, `TRACE`, `PROPFIND`).
    case other(String)

    /// Maps a method token to its case; unknown tokens (including other spellings such as `get`)
    /// become ``other(_:)``. The caller guarantees `token` is a valid RFC 9110 token.
    public init(token: String) {
        switch token {
        case "GET": self = .get
        case "HEAD": self = .head
        case "POST": self = .post
        case "PUT": self = .put
        case "DELETE": self = .delete
        case "OPTIONS": self = .options
        case "PATCH": self = .patch
        default: self = .other(token)
        }
    }

    /// The method token as it appears on the wire, e.g. `"GET"`.
    public var rawValue: String {
        switch self {
        case .get: "GET"
        case .head: "HEAD"
        case .post: "POST"
        case .put: "PUT"
        case .delete: "DELETE"
        case .options: "OPTIONS"
        case .patch: "PATCH"
        case .other(let token): token
        }
    }
}
