import Testing

@testable import PushCore

@Suite("HTTPRequestParser: mutated inputs")
struct HTTPParserFuzzTests {
    /// Bytes that matter to the grammar, so mutations hit parser decisions rather than only data.
    static let interesting: [UInt8] = [
        0x0D, 0x0A, 0x20, 0x09, 0x00, 0x7F, 0x80, 0xFF, 0x01,
    ] + Array(":;,/?*=\"0aFzH.1-".utf8)

    /// Tight limits so that mutations also run into every limit check.
    static var tight: HTTPParserLimits {
        var l = HTTPParserLimits(maxRequestLineBytes: 48, maxHeaderBytes: 120, maxHeaderCount: 4, maxBodyBytes: 20)
        l.maxChunkExtensionBytes = 6
        l.maxLeadingEmptyLines = 2
        return l
    }

    @Test(arguments: [false, true])
    func mutatedCorpusGivesTheSameEventsUnderAnySplit(tightLimits: Bool) {
        var rng = SplitMix64(seed: tightLimits ? 0xF00D : 0xBEEF)
        let limits = tightLimits ? Self.tight : HTTPParserLimits()
        var failures: [String] = []
        var errorsSeen = Set<String>()
        for _ in 0..<1500 {
            var input = httpBytes(httpCorpus[Int(rng.next() % UInt64(httpCorpus.count))].raw)
            for _ in 0..<(1 + rng.next() % 3) {
                let at = Int(rng.next() % UInt64(input.count))
                let byte = Self.interesting[Int(rng.next() % UInt64(Self.interesting.count))]
                switch rng.next() % 4 {
                case 0: input[at] = byte
                case 1: input.insert(byte, at: at)
                case 2: if input.count > 1 { input.remove(at: at) }
                default:
                    let end = min(input.count, at + Int(rng.next() % 8) + 1)
                    input.insert(contentsOf: input[at..<end], at: at)
                }
            }
            let reference = collect(input, limits: limits)
            if let error = finalError(reference) { errorsSeen.insert(error.code) }
            var cuts: [Int] = []
            var at = 0
            while at < input.count {
                at += Int(rng.next() % 17) + 1
                cuts.append(at)
            }
            if collect(input, cuts: cuts, limits: limits) != reference
                || collect(input, cuts: [Int(rng.next() % UInt64(input.count))], limits: limits) != reference
                || collectBytewise(input, limits: limits) != reference
            {
                failures.append(String(decoding: input, as: UTF8.self).debugDescription)
            }
        }
        #expect(failures.isEmpty, "split-dependent results for: \(failures.prefix(3))")
        // The mutations must actually reach the error paths for this test to mean anything.
        #expect(errorsSeen.count >= 10, "errors seen: \(errorsSeen.sorted())")
    }
}
