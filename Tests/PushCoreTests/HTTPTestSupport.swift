import Testing

@testable import PushCore

/// The bytes of `s` (UTF-8). Test requests spell their CRLFs out.
func httpBytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// What a caller sees from a parser, with body ranges resolved to bytes and adjacent body pieces
/// merged, so that runs over different splits of the same input can be compared.
enum Collected: Equatable, CustomStringConvertible {
    case head(HTTPRequestHead)
    case body([UInt8])
    case end
    case error(HTTPParseError)

    var description: String {
        switch self {
        case .head(let h): "head(\(h.method.rawValue) \(h.target) 1.\(h.versionMinor) \(h.framing))"
        case .body(let b): "body(\(String(decoding: b, as: UTF8.self).debugDescription))"
        case .end: "end"
        case .error(let e): "error(\(e))"
        }
    }
}

/// Feeds `input` to a fresh parser in pieces cut at `cuts` (sorted offsets), driving each piece
/// the way the server does, and checks the call contract on every call:
/// `.needMoreData` consumes everything, body ranges are non-empty and inside `0..<consumed`,
/// progress is always made, and nothing is reported after an error.
/// Each piece is copied to its own array so the parser cannot rely on earlier pieces' memory.
func collect(
    _ input: [UInt8], cuts: [Int] = [], limits: HTTPParserLimits = .init(),
    sourceLocation: SourceLocation = #_sourceLocation
) -> [Collected] {
    var parser = HTTPRequestParser(limits: limits)
    var out: [Collected] = []
    var bounds = [0]
    bounds += cuts.filter { $0 > 0 && $0 < input.count }
    bounds.append(input.count)
    var contractOK = true
    pieces: for p in 0..<(bounds.count - 1) {
        let piece = Array(input[bounds[p]..<bounds[p + 1]])
        var stop = false
        piece.withUnsafeBytes { raw in
            var offset = 0
            var zeroProgressCalls = 0
            while true {
                let rest = UnsafeRawBufferPointer(rebasing: raw[offset...])
                let (consumed, event) = parser.parse(rest)
                if consumed < 0 || consumed > rest.count { contractOK = false }
                switch event {
                case .needMoreData:
                    if consumed != rest.count { contractOK = false }
                    return
                case .head(let head):
                    out.append(.head(head))
                case .body(let range):
                    if range.isEmpty || range.lowerBound < 0 || range.upperBound > consumed { contractOK = false }
                    let bytes = Array(rest[range])
                    if case .body(let previous) = out.last {
                        out[out.count - 1] = .body(previous + bytes)
                    } else {
                        out.append(.body(bytes))
                    }
                case .end:
                    if !parser.isIdle { contractOK = false }  // ready for the next request
                    out.append(.end)
                case .error(let error):
                    out.append(.error(error))
                    // A dead parser keeps reporting the same error and consumes nothing.
                    let again = parser.parse(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                    if again.consumed != 0 || again.event != .error(error) { contractOK = false }
                    stop = true
                    return
                }
                zeroProgressCalls = consumed == 0 ? zeroProgressCalls + 1 : 0
                if zeroProgressCalls > 2 { contractOK = false; stop = true; return }
                offset += consumed
            }
        }
        if stop { break pieces }
    }
    #expect(contractOK, "parser broke the parse(_:) contract", sourceLocation: sourceLocation)
    return out
}

/// `collect` with the input fed one byte per call.
func collectBytewise(_ input: [UInt8], limits: HTTPParserLimits = .init()) -> [Collected] {
    collect(input, cuts: Array(0..<input.count), limits: limits)
}

/// The heads in a run of events.
func heads(_ events: [Collected]) -> [HTTPRequestHead] {
    events.compactMap { if case .head(let h) = $0 { h } else { nil } }
}

/// The head parsed from `s`, or nil when `s` yields an error or no complete head.
func parseHead(_ s: String, limits: HTTPParserLimits = .init()) -> HTTPRequestHead? {
    heads(collect(httpBytes(s), limits: limits)).first
}

/// The error a run ended with, if any.
func finalError(_ events: [Collected]) -> HTTPParseError? {
    if case .error(let e) = events.last { e } else { nil }
}
