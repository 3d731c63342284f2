import Testing
@testable import PushCore

@Suite("TopicName")
struct TopicNameTests {
    @Test func lengthLimit() {
        #expect(TopicName.maxBytes == 256)
        #expect(TopicName.problem(in: String(repeating: "a", count: 1)) == nil)
        #expect(TopicName.problem(in: String(repeating: "a", count: 256)) == nil)
        #expect(TopicName.problem(in: String(repeating: "a", count: 257)) == .tooLong(257))
        // 256 bytes with segments.
        let segmented = String(repeating: "abc/", count: 63) + "abcd"
        #expect(segmented.utf8.count == 256)
        #expect(TopicName.problem(in: segmented) == nil)
        #expect(TopicName.problem(in: segmented + "e") == .tooLong(257))
        #expect(TopicName.problem(in: "") == .empty)
    }

    @Test(arguments: Array("._~:@!$&'()*+,;=-"))
    func eachAllowedPunctuation(_ c: Character) {
        let b = c.asciiValue!
        #expect(TopicName.isAllowed(b))
        #expect(TopicName.problem(in: "a\(c)b") == nil)
        // A segment that is only "." is a dot segment (see `dotSegments`).
        #expect(TopicName.problem(in: "x/\(c)") == (c == "." ? .dotSegment : nil))
        #expect(TopicName.problem(in: String(c)) == (c == "." ? .dotSegment : nil))
        #expect(TopicName.problem(in: "x/\(c)\(c)\(c)") == nil)
    }

    @Test func alphanumericsAllowedEverythingElseRefused() {
        let allowed = Set(
            Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:@!$&'()*+,;=-/").map { $0.asciiValue! })
        for b in UInt8(0)...UInt8(255) {
            #expect(TopicName.isAllowed(b) == allowed.contains(b), "byte 0x\(String(b, radix: 16))")
        }
        for b in [UInt8(ascii: " "), UInt8(ascii: "%"), UInt8(ascii: "?"), UInt8(ascii: "#"), UInt8(ascii: "\""),
            UInt8(ascii: "<"), UInt8(ascii: "\\"), UInt8(ascii: "^"), UInt8(ascii: "`"), UInt8(ascii: "{"),
            UInt8(ascii: "|"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"), 0x00, 0x0A, 0x0D, 0x7F]
        {
            let name = "ab" + String(decoding: [b], as: UTF8.self) + "cd"
            #expect(TopicName.problem(in: name) == .badCharacter(b))
        }
    }

    @Test func slashesAndSegments() {
        #expect(TopicName.problem(in: "a/b") == nil)
        #expect(TopicName.problem(in: "a/b/c/d") == nil)
        #expect(TopicName.problem(in: "/a") == .emptySegment)
        #expect(TopicName.problem(in: "a/") == .emptySegment)
        #expect(TopicName.problem(in: "a//b") == .emptySegment)
        #expect(TopicName.problem(in: "/") == .emptySegment)
        #expect(TopicName.problem(in: "..") == .dotDotSegment)
        #expect(TopicName.problem(in: "a/..") == .dotDotSegment)
        #expect(TopicName.problem(in: "../a") == .dotDotSegment)
        #expect(TopicName.problem(in: "a/../b") == .dotDotSegment)
        // Dots in a longer segment are fine.
        #expect(TopicName.problem(in: "...") == nil)
        #expect(TopicName.problem(in: "a..b") == nil)
        #expect(TopicName.problem(in: "..a") == nil)
        #expect(TopicName.problem(in: "a/.b./c") == nil)
    }

    /// A "." segment is refused like ".." (RFC 3986 §5.2.4): a reverse proxy that removes dot
    /// segments would turn `./private/a` into `private/a`, another topic.
    @Test func dotSegments() {
        for name in [".", "./a", "a/.", "a/./b", "./private/a", "a/b/./c/d", "./..", "../."] {
            #expect(TopicName.problem(in: name) != nil, "\(name)")
        }
        #expect(TopicName.problem(in: ".") == .dotSegment)
        #expect(TopicName.problem(in: "./a") == .dotSegment)
        #expect(TopicName.problem(in: "a/.") == .dotSegment)
        #expect(TopicName.problem(in: "a/./b") == .dotSegment)
        #expect(TopicName.problem(in: "./private/a") == .dotSegment)
        // The first bad segment is the one reported.
        #expect(TopicName.problem(in: "./..") == .dotSegment)
        #expect(TopicName.problem(in: "../.") == .dotDotSegment)
        for name in [".a", "a.", ".a./b", "a/.b", "a/b.", "...", "a/.../b", "a.b/c..d", ".~", "._"] {
            #expect(TopicName.problem(in: name) == nil, "\(name)")
        }
    }

    @Test func nonASCIIRefused() {
        #expect(TopicName.problem(in: "café") == .badCharacter(0xC3))
        #expect(TopicName.problem(in: "日本") == .badCharacter(0xE6))
        #expect(TopicName.problem(in: "a\u{0}") == .badCharacter(0))
    }

    @Test func problemMessagesAreSentences() {
        let problems: [TopicName.Problem] = [.empty, .tooLong(300), .badCharacter(0x20), .emptySegment, .dotSegment, .dotDotSegment]
        for p in problems { #expect(!p.message.isEmpty) }
        #expect(TopicName.Problem.tooLong(300).message.contains("300"))
        #expect(TopicName.Problem.badCharacter(0x20).message.contains("0x20"))
    }
}

@Suite("EventName")
struct EventNameTests {
    @Test func valid() {
        #expect(EventName.isValid("a"))
        #expect(EventName.isValid("update"))
        #expect(EventName.isValid("A.b_c-9"))
        #expect(EventName.isValid(String(repeating: "x", count: 64)))
    }

    @Test func invalid() {
        #expect(!EventName.isValid(""))
        #expect(!EventName.isValid(String(repeating: "x", count: 65)))
        for bad in ["a b", "a\nb", "a\rb", "a\u{0}b", "a:b", "a/b", "é", "a~", "a!", " "] {
            #expect(!EventName.isValid(bad), "\(bad.debugDescription)")
        }
    }
}
