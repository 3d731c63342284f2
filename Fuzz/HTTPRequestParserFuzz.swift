/// libFuzzer target for ``HTTPRequestParser``.
///
/// Invariants checked for every input:
/// - no crash, no AddressSanitizer report, no unbounded loop (every call consumes a byte or
///   reports an event);
/// - the events for the whole input at once equal the events for the same input fed in random
///   splits (including one byte at a time);
/// - a reported head never exceeds the limits (request line, header count, body size);
/// - body ranges lie inside the buffer passed to that call and below `consumed`;
/// - after an error, the parser keeps reporting an error.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPRequestParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    var rng = FuzzRandom(seed: fuzzSeed(input))
    let whole = runParser(input, pieceSizes: { _ in Int.max / 2 }, rng: &rng)
    let bytewise = runParser(input, pieceSizes: { _ in 1 }, rng: &rng)
    let random = runParser(input, pieceSizes: { $0.below(17) + 1 }, rng: &rng)
    if whole != bytewise { fuzzFail("byte-by-byte split differs:\n\(whole)\n\(bytewise)") }
    if whole != random { fuzzFail("random split differs:\n\(whole)\n\(random)") }
    return 0
}
