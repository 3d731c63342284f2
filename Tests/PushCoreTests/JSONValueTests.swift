import Testing

@testable import PushCore

@Suite("JSONValue: strict RFC 8259 parsing")
struct JSONValueTests {
    private func parse(_ text: String) -> Result<JSONValue, JSONParseError> { JSONValue.parse(Array(text.utf8)) }

    @Test func parsesAllValueKinds() throws {
        let v = try parse(#" {"a": [1, -2.5e3, true, false, null], "b": "x\ny", "c": {}} "#).get()
        #expect(v["a"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null]))
        #expect(v["b"] == .string("x\ny"))
        #expect(v["c"] == .object([]))
        #expect(v["missing"] == nil)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let v = try parse(#""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#).get()
        #expect(v == .string("\"\\/\u{8}\u{c}\n\r\té😀"))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "1e", "\"\\x\"", "\"a", "tru", "nul",
        "{\"a\" 1}", "{a:1}", "[1 2]", "\"\u{01}\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
        "{\"a\":1,\"a\":2}", "1 2", "// c\n1",
    ])
    func refusesMalformed(_ text: String) {
        guard case .failure = parse(text) else {
            Issue.record("accepted \(text.debugDescription)")
            return
        }
    }

    /// An object with many members is parsed in linear time: the duplicate-name check must not
    /// scan every earlier member (80,000 names in a `/publish` body held a loop for 11 s). The
    /// bound is 20x what the linear parser needs on a loaded CI machine, and far below the ~17 s
    /// the quadratic check took for 100,000 names.
    @Test func manyMembersParseInLinearTime() throws {
        var text = "{"
        for i in 0..<100_000 { text += (i == 0 ? "" : ",") + "\"k\(i)\":\(i)" }
        text += ",\"k99999\":0}"
        let clock = ContinuousClock()
        let started = clock.now
        let result = parse(text)
        let took = clock.now - started
        guard case .failure(let e) = result else { Issue.record("the duplicate k99999 was accepted"); return }
        #expect(e.description.contains("duplicate member name \"k99999\""), "\(e)")
        #expect(took < .seconds(5), "100,000 members took \(took)")
        let ok = parse(String(text.dropLast(",\"k99999\":0}".count)) + "}")
        #expect((try? ok.get())?["k99999"] == .number("99999"))
    }

    @Test func boundsNesting() {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        guard case .failure(let e) = JSONValue.parse(Array(deep.utf8), maxDepth: 32) else {
            Issue.record("accepted 40 levels")
            return
        }
        #expect(e.reason.contains("nested"))
        #expect((try? JSONValue.parse(Array(deep.utf8), maxDepth: 64).get()) != nil)
    }

    @Test func refusesInvalidUTF8InStrings() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        guard case .failure = JSONValue.parse(bytes) else {
            Issue.record("accepted invalid UTF-8")
            return
        }
    }
}

@Suite("Broker: Idempotency-Key")
struct BrokerIdempotencyTests {
    private func broker() -> Broker {
        Broker(loopCount: 1, replayLimits: .init(events: 100, bytes: 1 << 20, maxAgeMilliseconds: 1000), nowMilliseconds: 1_000)
    }

    @Test func retryReturnsFirstIDsAndPublishesOnce() {
        let b = broker()
        let data = SharedBytes(Array("x".utf8))
        guard case .published(let first) = b.publish(batch: [("t", nil, data)], idempotencyKey: "k", fromLoop: nil, nowMilliseconds: 2_000)
        else { Issue.record("first publish not published"); return }
        guard case .replayed(let again) = b.publish(batch: [("t", nil, data)], idempotencyKey: "k", fromLoop: nil, nowMilliseconds: 2_500)
        else { Issue.record("retry published again"); return }
        #expect(again.map(\.id) == first.map(\.id))
        #expect(b.publishedCount == 1)
    }

    @Test func sameKeyOtherTopicIsAConflict() {
        let b = broker()
        let data = SharedBytes(Array("x".utf8))
        _ = b.publish(batch: [("t", nil, data)], idempotencyKey: "k", fromLoop: nil, nowMilliseconds: 2_000)
        guard case .keyConflict = b.publish(batch: [("u", nil, data)], idempotencyKey: "k", fromLoop: nil, nowMilliseconds: 2_001)
        else { Issue.record("expected a conflict"); return }
        #expect(b.publishedCount == 1)
    }

    @Test func keyExpiresWithTheReplayWindow() {
        let b = broker()
        let data = SharedBytes(Array("x".utf8))
        _ = b.publish(batch: [("t", nil, data)], idempotencyKey: "k", fromLoop: nil, nowMilliseconds: 2_000)
        guard case .published = b.publish(batch: [("t", nil, data)], idempotencyKey: "k", fromLoop: nil, nowMilliseconds: 3_001)
        else { Issue.record("key outlived the window"); return }
        #expect(b.publishedCount == 2)
    }

    @Test func batchGetsConsecutiveIDsAndIsRememberedWhole() {
        let b = broker()
        let d = SharedBytes(Array("x".utf8))
        guard case .published(let events) = b.publish(
            batch: [("a", nil, d), ("b", "e", d), ("a", nil, d)], idempotencyKey: "batch", fromLoop: nil, nowMilliseconds: 5_000)
        else { Issue.record("not published"); return }
        #expect(events.map(\.id.sequence) == [events[0].id.sequence, events[0].id.sequence + 1, events[0].id.sequence + 2])
        guard case .replayed(let r) = b.publish(
            batch: [("a", nil, d), ("b", "e", d), ("a", nil, d)], idempotencyKey: "batch", fromLoop: nil, nowMilliseconds: 5_001)
        else { Issue.record("batch retry published again"); return }
        #expect(r.map(\.topic) == ["a", "b", "a"])
    }
}
