/// Shared helpers for the libFuzzer targets in `Fuzz/`. Each target is compiled together with the
/// PushCore sources it needs (see `scripts/fuzz`), so internal API is reachable.

/// A normalized record of what a parser reported for a whole input, independent of how the
/// input was split into calls: body ranges are resolved to bytes and adjacent body pieces joined.
enum FuzzRecord: Equatable {
    case head(String)
    case body([UInt8])
    case end
    case error(String)
}

/// A tiny deterministic PRNG (xorshift64*) seeded from the input, so split points are
/// reproducible for a given crash input.
struct FuzzRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
}

/// A seed for ``FuzzRandom`` derived from the input bytes (FNV-1a).
func fuzzSeed(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// Stops the process with a message libFuzzer records as a crash.
func fuzzFail(_ message: String) -> Never {
    fatalError("fuzz invariant violated: \(message)")
}
