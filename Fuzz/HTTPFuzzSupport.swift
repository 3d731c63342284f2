/// The HTTP parser driver shared by `HTTPRequestParserFuzz.swift` and `ChunkedBodyFuzz.swift`.

/// Small limits so the fuzzer reaches every limit branch with short inputs.
let fuzzLimits = HTTPParserLimits(maxRequestLineBytes: 256, maxHeaderBytes: 512, maxHeaderCount: 12, maxBodyBytes: 300)

/// Feeds `input` to a fresh parser in pieces whose sizes `pieceSizes` draws, and records the
/// normalized events, checking the per-call invariants listed in `HTTPRequestParserFuzz.swift`.
func runParser(_ input: [UInt8], pieceSizes: (inout FuzzRandom) -> Int, rng: inout FuzzRandom) -> [FuzzRecord] {
    var parser = HTTPRequestParser(limits: fuzzLimits)
    var records: [FuzzRecord] = []
    var start = 0
    func add(_ r: FuzzRecord) {
        if case .body(let b) = r, case .body(let previous)? = records.last {
            records[records.count - 1] = .body(previous + b)
        } else {
            records.append(r)
        }
    }
    outer: while start < input.count {
        let end = min(input.count, start + max(1, pieceSizes(&rng)))
        let piece = Array(input[start..<end])
        var offset = 0
        var spins = 0
        while true {
            spins += 1
            if spins > 100_000 { fuzzFail("parser does not progress") }
            let (consumed, event) = piece.withUnsafeBytes { raw in
                parser.parse(UnsafeRawBufferPointer(rebasing: raw[offset...]))
            }
            if consumed < 0 || offset + consumed > piece.count { fuzzFail("consumed out of range") }
            switch event {
            case .needMoreData:
                if offset + consumed != piece.count { fuzzFail("needMoreData without consuming all") }
                offset += consumed
            case .head(let head):
                if head.target.utf8.count > fuzzLimits.maxRequestLineBytes { fuzzFail("target over limit") }
                if head.headers.count > fuzzLimits.maxHeaderCount { fuzzFail("too many headers") }
                if case .contentLength(let n) = head.framing, n > fuzzLimits.maxBodyBytes || n < 0 {
                    fuzzFail("content-length over limit")
                }
                add(.head("\(head)"))
                offset += consumed
            case .body(let range):
                if range.lowerBound < 0 || range.upperBound > consumed || range.isEmpty {
                    fuzzFail("body range \(range) outside consumed \(consumed)")
                }
                add(.body(Array(piece[(offset + range.lowerBound)..<(offset + range.upperBound)])))
                offset += consumed
            case .end:
                add(.end)
                offset += consumed
            case .error(let error):
                add(.error("\(error)"))
                let (_, again) = piece.withUnsafeBytes { parser.parse(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
                guard case .error = again else { fuzzFail("parser revived after an error") }
                break outer
            }
            if event == .needMoreData { break }
        }
        start = end
    }
    return records
}

