/// libFuzzer target for ``WebSocketFrameDecoder`` with its incremental UTF-8 validation
/// (RFC 6455 §5, §8.1).
///
/// The first input byte picks the options (permessage-deflate on/off); the rest is the frame
/// stream. Invariants: no crash or ASan report; the events for the whole input equal those for
/// byte-by-byte and random splits; every text message is valid UTF-8 (checked against Swift's own
/// decoder); no message exceeds `maxMessageBytes`; control payloads are at most 125 bytes; after
/// an error the decoder stays dead.

let wsMaxMessage = 512

/// Feeds `input` in pieces and records the events (needMoreData dropped).
func runDecoder(_ input: [UInt8], deflate: Bool, pieceSizes: (inout FuzzRandom) -> Int, rng: inout FuzzRandom) -> [WebSocketFrameEvent] {
    var decoder = WebSocketFrameDecoder(maxMessageBytes: wsMaxMessage, permessageDeflate: deflate)
    var events: [WebSocketFrameEvent] = []
    var start = 0
    outer: while start < input.count {
        let end = min(input.count, start + max(1, pieceSizes(&rng)))
        let piece = Array(input[start..<end])
        var offset = 0
        var spins = 0
        while true {
            spins += 1
            if spins > 100_000 { fuzzFail("decoder does not progress") }
            let (consumed, event) = piece.withUnsafeBytes { decoder.parse(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            if consumed < 0 || offset + consumed > piece.count { fuzzFail("consumed out of range") }
            offset += consumed
            switch event {
            case .needMoreData:
                if offset != piece.count && !decoder.isClosed { fuzzFail("needMoreData without consuming all") }
            case .text(let bytes):
                if String(validating: bytes, as: UTF8.self) == nil { fuzzFail("invalid UTF-8 text message") }
                if bytes.count > wsMaxMessage { fuzzFail("text over limit") }
                events.append(event)
            case .binary(let bytes), .deflated(_, let bytes):
                if bytes.count > wsMaxMessage { fuzzFail("message over limit") }
                if case .deflated = event, !deflate { fuzzFail("deflated without negotiation") }
                events.append(event)
            case .ping(let bytes), .pong(let bytes):
                if bytes.count > 125 { fuzzFail("control payload over 125") }
                events.append(event)
            case .close:
                events.append(event)
            case .error:
                events.append(event)
                let (n, again) = piece.withUnsafeBytes { decoder.parse(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
                guard case .error = again, n == 0 else { fuzzFail("decoder revived after an error") }
                break outer
            }
            if event == .needMoreData { break }
        }
        start = end
    }
    return events
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWebSocketFrameDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let deflate = data[0] & 1 == 1
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var rng = FuzzRandom(seed: fuzzSeed(input))
    let whole = runDecoder(input, deflate: deflate, pieceSizes: { _ in Int.max / 2 }, rng: &rng)
    let bytewise = runDecoder(input, deflate: deflate, pieceSizes: { _ in 1 }, rng: &rng)
    let random = runDecoder(input, deflate: deflate, pieceSizes: { $0.below(11) + 1 }, rng: &rng)
    if whole != bytewise { fuzzFail("byte-by-byte split differs:\n\(whole)\n\(bytewise)") }
    if whole != random { fuzzFail("random split differs:\n\(whole)\n\(random)") }
    return 0
}
