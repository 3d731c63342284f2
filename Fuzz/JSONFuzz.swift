/// libFuzzer target for ``JSONValue/parse(_:maxDepth:)``, the parser behind JSON batch publish
/// and the JWT header/claims, and for ``WebSocketMessages/parseCommand(_:)``, the flat-object
/// parser behind WebSocket commands (`subscribe`, `publish`, `auth`…).
///
/// Invariants: no crash or stack overflow at any nesting (the depth limit holds); parsing is
/// deterministic; the parse is all-or-nothing (a value or an error with an offset inside the
/// input); every string in a parsed value is valid Unicode (Swift `String` guarantees it, so a
/// lone surrogate escape must be refused or replaced, never crash). For commands: every `ack` or
/// `error` reply is a JSON object, and its `ref` is the command's, with the same JSON type
/// (API.md "WebSocket (issue 4)", Commands).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let first = JSONValue.parse(input, maxDepth: 32)
    let second = JSONValue.parse(input, maxDepth: 32)
    if first != second { fuzzFail("parse is not deterministic") }
    switch first {
    case .success(let value):
        if depth(of: value) > 33 { fuzzFail("value deeper than maxDepth") }
    case .failure(let error):
        if error.offset < 0 || error.offset > input.count { fuzzFail("error offset \(error.offset) outside input") }
    }
    // A shallow limit must refuse what is deeper, never crash.
    if case .success(let value) = JSONValue.parse(input, maxDepth: 2), depth(of: value) > 3 {
        fuzzFail("maxDepth 2 not enforced")
    }
    // WebSocket commands: deterministic, and a command is only ever read from a JSON object.
    let command = WebSocketMessages.parseCommand(input)
    if command != WebSocketMessages.parseCommand(input) { fuzzFail("parseCommand is not deterministic") }
    if case .success = command {
        guard case .success(.object) = first else { fuzzFail("a command parsed from input that is not a JSON object") }
    }
    // Every reply is one JSON object, and a ref it carries is the input's, with the same JSON type.
    let refused: WebSocketCommandError?
    let reply: [UInt8]
    switch command {
    case .success(let c): refused = nil; reply = WebSocketMessages.ack(ref: c.ref)
    case .failure(let e): refused = e; reply = WebSocketMessages.error(e)
    }
    guard case .success(let parsedReply) = JSONValue.parse(reply), case .object = parsedReply else {
        fuzzFail("a command reply is not a JSON object")
    }
    if let echoed = parsedReply["ref"] {
        guard case .success(let input) = first, let sent = input["ref"], sameRef(sent, echoed) else {
            fuzzFail("the reply's ref is not the command's")
        }
    } else if case .success = command, case .success(let input) = first, let sent = input["ref"], sent != .null {
        fuzzFail("an accepted command's ref is missing from its ack")
    } else if refused?.ref != nil {
        fuzzFail("an error's ref is missing from its reply")
    }
    return 0
}

/// Whether an echoed ref is the one sent: the same string, or the same integer (`-0` is echoed `0`).
func sameRef(_ sent: JSONValue, _ echoed: JSONValue) -> Bool {
    switch (sent, echoed) {
    case (.string(let a), .string(let b)): return a == b
    case (.number(let a), .number(let b)): return Int64(a) != nil && Int64(a) == Int64(b)
    default: return false
    }
}

/// Nesting depth of a value: scalars are 0, each array/object level adds 1.
func depth(of value: JSONValue) -> Int {
    switch value {
    case .array(let items): return 1 + (items.map(depth(of:)).max() ?? 0)
    case .object(let members): return 1 + (members.map { depth(of: $0.1) }.max() ?? 0)
    default: return 0
    }
}
