// The event body pushd-bench publishes and checks: one ASCII line,
//   pb1 <run:8 hex> <topic> <seq> <send-ns> xxxx...   (padded with 'x' to the requested size)
// so a subscriber can tell its own run's events apart, detect missing / duplicate / out-of-order
// sequence numbers per subscriber, and compute publish->receive latency on CLOCK_MONOTONIC.

/// Builds and parses event bodies.
enum EventBody {
    /// Fields decoded from one body.
    struct Fields {
        /// Run id of the publishing pushd-bench.
        var run: UInt32
        /// Topic index.
        var topic: Int
        /// Sequence number within the topic.
        var seq: Int
        /// CLOCK_MONOTONIC ns when the publish request was written.
        var sentNanos: UInt64
    }

    /// Appends a body of exactly `size` bytes to `out`.
    static func append(to out: inout [UInt8], size: Int, run: UInt32, topic: Int, seq: Int, sentNanos: UInt64) {
        let start = out.count
        out.append(contentsOf: [UInt8(ascii: "p"), UInt8(ascii: "b"), UInt8(ascii: "1"), UInt8(ascii: " ")])
        appendHex8(&out, run)
        out.append(UInt8(ascii: " "))
        appendDecimal(&out, UInt64(topic))
        out.append(UInt8(ascii: " "))
        appendDecimal(&out, UInt64(seq))
        out.append(UInt8(ascii: " "))
        appendDecimal(&out, sentNanos)
        out.append(UInt8(ascii: " "))
        let used = out.count - start
        if used < size { out.append(contentsOf: repeatElement(UInt8(ascii: "x"), count: size - used)) }
    }

    /// Appends the decimal digits of `value`.
    @inline(__always)
    static func appendDecimal(_ out: inout [UInt8], _ value: UInt64) {
        if value == 0 { out.append(UInt8(ascii: "0")); return }
        var digits: (UInt64, Int) = (value, 0)
        var tmp = [UInt8](repeating: 0, count: 20)
        while digits.0 > 0 {
            tmp[digits.1] = UInt8(48 + digits.0 % 10)
            digits.0 /= 10
            digits.1 += 1
        }
        var k = digits.1 - 1
        while k >= 0 { out.append(tmp[k]); k -= 1 }
    }

    /// Appends 8 lowercase hex digits.
    static func appendHex8(_ out: inout [UInt8], _ value: UInt32) {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var shift: UInt32 = 28
        for _ in 0..<8 {
            out.append(hex[Int((value >> shift) & 15)])
            shift &-= 4
        }
    }

    /// Parses a body at `p[0..<n]`; nil if it is not a pb1 body.
    @inline(__always)
    static func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> Fields? {
        guard n >= 16, p[0] == UInt8(ascii: "p"), p[1] == UInt8(ascii: "b"), p[2] == UInt8(ascii: "1"),
            p[3] == UInt8(ascii: " ")
        else { return nil }
        var i = 4
        var run: UInt32 = 0
        for _ in 0..<8 {
            let c = p[i]
            let v: UInt32
            if c >= 48 && c <= 57 { v = UInt32(c - 48) } else if c >= 97 && c <= 102 { v = UInt32(c - 87) } else { return nil }
            run = run << 4 | v
            i += 1
        }
        guard p[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        var numbers: (UInt64, UInt64, UInt64) = (0, 0, 0)
        for field in 0..<3 {
            var v: UInt64 = 0
            let begin = i
            while i < n, p[i] >= 48, p[i] <= 57 {
                v = v &* 10 &+ UInt64(p[i] - 48)
                i += 1
            }
            guard i > begin, i < n, p[i] == UInt8(ascii: " ") else { return nil }
            i += 1
            switch field {
            case 0: numbers.0 = v
            case 1: numbers.1 = v
            default: numbers.2 = v
            }
        }
        return Fields(run: run, topic: Int(numbers.0), seq: Int(numbers.1), sentNanos: numbers.2)
    }
}
