import Foundation
import Testing
@testable import PushCore

@Suite("TLS wire helpers (ALPN RFC 7301, plaintext sniffing)")
struct TLSWireTests {
    /// An ALPN ProtocolNameList from names (RFC 7301 §3.1).
    func list(_ names: [String]) -> [UInt8] {
        names.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
    }

    func select(_ wire: [UInt8]) -> Range<Int>? {
        wire.withUnsafeBytes { TLSWire.selectProtocol(TLSWire.http11, from: $0) }
    }

    @Test func picksHTTP11WhereverItIs() {
        #expect(select(list(["http/1.1"])) == 1..<9)
        let curl = list(["h2", "http/1.1"])
        let r = select(curl)
        #expect(r == 4..<12)
        #expect(Array(curl[r!]) == TLSWire.http11)
        #expect(select(list(["http/1.1", "h2"])) == 1..<9)
    }

    @Test func refusesWhenNotOffered() {
        #expect(select(list(["h2"])) == nil)
        #expect(select(list(["http/1.0", "spdy/3"])) == nil)
        #expect(select(list(["http/1.10"])) == nil)
        #expect(select(list(["http/1."])) == nil)
        #expect(select([]) == nil)
    }

    @Test func refusesMalformedLists() {
        #expect(select([0]) == nil)  // zero-length name
        #expect(select([9] + Array("http/1.1".utf8)) == nil)  // length past the end
        #expect(select(list(["http/1.1"]) + [0]) == nil)  // a valid name, then an empty one
        #expect(select(list(["http/1.1"]) + [5, 1]) == nil)  // then a truncated one
    }

    @Test func sniffsPlaintextHTTP() {
        func sniff(_ b: [UInt8]) -> Bool { b.withUnsafeBytes { TLSWire.looksLikePlaintextHTTP($0) } }
        #expect(sniff(Array("GET / HTTP/1.1\r\n".utf8)))
        #expect(sniff(Array("P".utf8)))
        #expect(sniff(Array("OPTIONS * HTTP/1.1\r\n".utf8)))
        #expect(!sniff([0x16, 0x03, 0x01, 0x02, 0x00]))  // a TLS handshake record
        #expect(!sniff([0x80, 0x2e, 0x01]))  // SSLv2-compatible hello
        #expect(!sniff([]))
        #expect(!sniff(Array("get /".utf8)))
    }

    @Test func plaintextAnswerIsWellFormed() {
        let text = String(decoding: TLSWire.plaintextRequestResponse, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        #expect(parts.count == 2)
        #expect(parts[0].hasPrefix("HTTP/1.1 400 "))
        #expect(parts[0].contains("Content-Length: \(parts[1].utf8.count)"))
        #expect(parts[0].contains("Connection: close"))
    }

    @Test func minimumVersions() {
        #expect(TLSMinimumVersion(rawValue: "1.2") == .tls12)
        #expect(TLSMinimumVersion(rawValue: "1.3") == .tls13)
        #expect(TLSMinimumVersion(rawValue: "1.1") == nil)
    }
}
