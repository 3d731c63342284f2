/// libFuzzer target for the chunked body decoder of ``HTTPRequestParser`` (RFC 9112 §7.1).
///
/// The input is appended to a fixed `POST` head with `Transfer-Encoding: chunked`, so every
/// mutation lands in chunk sizes, extensions, data, CRLFs and trailers. Invariants (beyond those
/// of `runParser`): splits do not change the events; the body bytes reported never exceed
/// `maxBodyBytes`; a message that ends was reported with exactly the data of its chunks.

let chunkedPrefix = Array("POST /publish?topic=t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChunkedBody(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = chunkedPrefix + Array(UnsafeBufferPointer(start: data, count: size))
    var rng = FuzzRandom(seed: fuzzSeed(input))
    let whole = runParser(input, pieceSizes: { _ in Int.max / 2 }, rng: &rng)
    let bytewise = runParser(input, pieceSizes: { _ in 1 }, rng: &rng)
    let random = runParser(input, pieceSizes: { $0.below(9) + 1 }, rng: &rng)
    if whole != bytewise { fuzzFail("byte-by-byte split differs:\n\(whole)\n\(bytewise)") }
    if whole != random { fuzzFail("random split differs:\n\(whole)\n\(random)") }
    // Body bytes of the first message never exceed the limit.
    var bodyBytes = 0
    for record in whole {
        if case .body(let b) = record { bodyBytes += b.count }
        if record == .end { break }
    }
    if bodyBytes > fuzzLimits.maxBodyBytes { fuzzFail("chunked body \(bodyBytes) over limit") }
    return 0
}
