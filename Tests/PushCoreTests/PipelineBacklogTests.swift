import Testing

@testable import PushCore

@Suite("PipelineBacklog (stalled pipelined input)")
struct PipelineBacklogTests {
    private func append(_ b: inout PipelineBacklog, _ s: String) -> Bool {
        Array(s.utf8).withUnsafeBytes { b.append($0) }
    }

    private func text(_ b: PipelineBacklog) -> String {
        b.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    @Test func appendsInOrderAndConsumesFromTheFront() {
        var b = PipelineBacklog(limit: 100)
        #expect(b.isEmpty)
        let ok1 = append(&b, "GET /a")
        #expect(ok1)
        let ok2 = append(&b, " HTTP/1.1")
        #expect(ok2)
        #expect(b.count == 15)
        b.removeFirst(4)
        #expect(text(b) == "/a HTTP/1.1")
        let ok3 = append(&b, "\r\n")
        #expect(ok3)
        #expect(text(b) == "/a HTTP/1.1\r\n")
        b.removeFirst(1000)  // clamped
        #expect(b.isEmpty)
        #expect(text(b) == "")
    }

    @Test func refusesWhatWouldPassTheLimitAndKeepsWhatItHad() {
        var b = PipelineBacklog(limit: 10)
        let ok4 = append(&b, "0123456")
        #expect(ok4)
        #expect(!append(&b, "7890"))  // 11 > 10: nothing appended
        #expect(text(b) == "0123456")
        #expect(append(&b, "789"))  // exactly 10
        let ok5 = append(&b, "x")
        #expect(!ok5)
        b.removeFirst(5)
        #expect(append(&b, "abcde"))  // consumed bytes free room
        #expect(text(b) == "56789abcde")
        let ok6 = append(&b, "")
        #expect(ok6)
        #expect(PipelineBacklog(limit: -1).limit == 0)
    }

    @Test func compactionKeepsTheBytesIntact() {
        var b = PipelineBacklog(limit: 1 << 20)
        var expected = ""
        for i in 0..<2000 {
            let piece = "req\(i);"
            let ok7 = append(&b, piece)
            #expect(ok7)
            expected += piece
            if i % 3 == 0 {
                let n = min(5, b.count)
                b.removeFirst(n)
                expected.removeFirst(n)
            }
        }
        #expect(text(b) == expected)
    }

    /// What LoopWorker does: parse a pipelined stream but stop after every `stallEvery` requests,
    /// keep the unparsed rest in the backlog, append newly received bytes behind it, resume.
    @Test(arguments: [1, 2, 7])
    func stallingAndResumingParsesEveryRequestInOrder(stallEvery: Int) {
        let requests = (0..<50).map { i in
            i % 2 == 0
                ? "POST /topics/t\(i) HTTP/1.1\r\nHost: h\r\nContent-Length: \(String(i).count)\r\n\r\n\(i)"
                : "GET /healthz?n=\(i) HTTP/1.1\r\nHost: h\r\n\r\n"
        }
        let wire = Array(requests.joined().utf8)
        var parser = HTTPRequestParser(limits: HTTPParserLimits())
        var backlog = PipelineBacklog(limit: wire.count)
        var done: [String] = []
        var body: [UInt8] = []
        var path = ""
        var sinceStall = 0

        /// Parses `bytes` until `stallEvery` requests ended at a boundary; returns bytes left.
        func parse(_ bytes: UnsafeRawBufferPointer) -> Int {
            var rest = bytes
            while true {
                if sinceStall >= stallEvery, rest.count > 0, !parser.hasPartialHead, path.isEmpty {
                    sinceStall = 0
                    return rest.count
                }
                let (consumed, event) = parser.parse(rest)
                let chunk = rest
                rest = UnsafeRawBufferPointer(rebasing: rest[consumed...])
                switch event {
                case .needMoreData: return 0
                case .head(let h): path = h.path
                case .body(let r): body.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[r]))
                case .end:
                    done.append(path + ":" + String(decoding: body, as: UTF8.self))
                    path = ""
                    body = []
                    sinceStall += 1
                case .error(let e):
                    Issue.record("parse error \(e)")
                    return 0
                }
            }
        }

        // Receive in 37-byte pieces; resume from the backlog between pieces.
        var offset = 0
        while offset < wire.count || !backlog.isEmpty {
            if !backlog.isEmpty {
                let left = backlog.withUnsafeBytes { parse($0) }
                backlog.removeFirst(backlog.count - left)
            }
            guard offset < wire.count else { continue }
            let piece = Array(wire[offset..<min(offset + 37, wire.count)])
            offset += piece.count
            piece.withUnsafeBytes { bytes in
                let kept: Bool
                if !backlog.isEmpty {
                    kept = backlog.append(bytes)
                } else {
                    let left = parse(bytes)
                    kept = backlog.append(UnsafeRawBufferPointer(rebasing: bytes.suffix(left)))
                }
                #expect(kept)
            }
        }
        let expected = (0..<50).map { i in i % 2 == 0 ? "/topics/t\(i):\(i)" : "/healthz:" }
        #expect(done == expected)
    }
}
