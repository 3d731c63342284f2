/// A heap cell holding one value: moves a large, rarely present struct out of a per-connection
/// object, so the object costs 8 bytes for it instead of the struct's full size.
final class Box<Value> {
    /// The value held.
    var value: Value
    /// Boxes `value`.
    init(_ value: Value) { self.value = value }
}
