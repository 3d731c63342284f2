import Testing
@testable import PushConfig
@testable import PushServer

/// The `websocket.*` keys: file, environment, booleans and ranges.
@Suite("websocket.* keys") struct WebSocketConfigTests {
    @Test("defaults: 64 KiB messages, 30 s pings, 10 s pong timeout, deflate on, publish and echo off")
    func defaults() {
        let ws = ServerConfiguration().websocket
        #expect(ws.maxMessageBytes == 65536 && ws.pingInterval == 30 && ws.pongTimeout == 10)
        #expect(ws.permessageDeflate && !ws.allowPublish && !ws.echoEndpoint)
    }

    @Test("the file and the environment set every key; booleans take true/false, yes/no, on/off, 1/0")
    func setKeys() throws {
        let c = try load(yaml: """
            websocket:
              max_message_bytes: 16MiB
              ping_interval: 5s
              pong_timeout: 2s
              permessage_deflate: false
              allow_publish: yes
              echo_endpoint: on
            """)
        #expect(c.websocket.maxMessageBytes == 16 << 20 && c.websocket.pingInterval == 5 && c.websocket.pongTimeout == 2)
        #expect(!c.websocket.permessageDeflate && c.websocket.allowPublish && c.websocket.echoEndpoint)
        let e = try load(environment: ["PUSHD_WEBSOCKET_ECHO_ENDPOINT": "1", "PUSHD_WEBSOCKET_ALLOW_PUBLISH": "FALSE"])
        #expect(e.websocket.echoEndpoint && !e.websocket.allowPublish)
    }

    @Test("bad values name the key")
    func badValues() {
        #expect(issues(yaml: "websocket:\n  allow_publish: maybe\n").map(\.keyPath) == ["websocket.allow_publish"])
        #expect(issues(yaml: "websocket:\n  max_message_bytes: 10\n").map(\.keyPath) == ["websocket.max_message_bytes"])
    }
}
