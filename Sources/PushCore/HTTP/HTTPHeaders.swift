/// The header fields of a request, in the order received (RFC 9110 §5.3).
///
/// Names keep the spelling sent; every lookup compares names ASCII case-insensitively
/// (RFC 9110 §5.1). Repeated fields stay separate entries, so ``values(_:)`` returns one element
/// per field line. Lookups are linear scans: a head holds at most
/// ``HTTPParserLimits/maxHeaderCount`` fields, and most requests carry fewer than twenty.
public struct HTTPHeaders: Sendable, Sequence, Equatable {
    /// One field line: its name as sent and its value with surrounding OWS removed.
    public typealias Element = (name: String, value: String)

    @usableFromInline
    var fields: [Element]

    /// An empty field list.
    public init() { fields = [] }

    /// Fields in the given order. Names and values are taken as given, without validation.
    public init(_ fields: [Element]) { self.fields = fields }

    /// Appends one field line after the existing ones. No validation.
    public mutating func append(name: String, value: String) {
        fields.append((name, value))
    }

    /// The value of the first field named `name` (case-insensitive), or nil when absent.
    /// Use ``values(_:)`` for fields that may repeat.
    public subscript(_ name: String) -> String? {
        for field in fields where HTTPSyntax.equalsIgnoringCase(field.name.utf8, name.utf8) {
            return field.value
        }
        return nil
    }

    /// The values of every field named `name` (case-insensitive), in order; empty when absent.
    /// A list-valued field sent on one line (`a, b`) is one element: split it yourself or use
    /// ``containsToken(_:in:)``.
    public func values(_ name: String) -> [String] {
        var result: [String] = []
        for field in fields where HTTPSyntax.equalsIgnoringCase(field.name.utf8, name.utf8) {
            result.append(field.value)
        }
        return result
    }

    /// Whether any field named `name` holds `token` as an element of its comma-separated list
    /// (RFC 9110 §5.6.1), compared ASCII case-insensitively after trimming OWS. For example
    /// `Connection: keep-alive, Upgrade` contains `"upgrade"`. Does not allocate.
    public func containsToken(_ token: String, in name: String) -> Bool {
        for field in fields where HTTPSyntax.equalsIgnoringCase(field.name.utf8, name.utf8) {
            let found = !HTTPSyntax.forEachListElement(field.value) { element in
                !HTTPSyntax.equalsIgnoringCase(element, token.utf8)
            }
            if found { return true }
        }
        return false
    }

    /// The number of field lines (repeats counted separately).
    public var count: Int { fields.count }

    /// Iterates the field lines in received order.
    public func makeIterator() -> IndexingIterator<[Element]> { fields.makeIterator() }

    /// Exact equality: same field lines in the same order, names compared case-sensitively.
    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}
