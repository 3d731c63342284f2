import Testing

@testable import PushConfig

/// Loads `yaml` with `environment` and returns what the sources set, removing the file afterwards.
private func settings(_ yaml: String, environment: [String: String] = [:]) throws -> ConfigSettings {
    let path = TempFile.write(yaml)
    defer { TempFile.remove(path) }
    return try ConfigLoader.loadWithSettings(cli: CLIOverrides(configFile: path), environment: environment).settings
}

@Suite("Which keys a reload changed (ConfigSettings)")
struct ConfigSettingsTests {
    @Test("a changed value is named; keys left alone are not")
    func changedValue() throws {
        let old = try settings("limits:\n  max_event_bytes: 1KiB\nsse:\n  heartbeat: 15s\n")
        let new = try settings("limits:\n  max_event_bytes: 500B\nsse:\n  heartbeat: 15s\n")
        #expect(old.changedKeys(to: new) == ["limits.max_event_bytes"])
        #expect(new.changedKeys(to: old) == ["limits.max_event_bytes"])
        #expect(old.changedKeys(to: old) == [])
    }

    @Test("the same value in another form, or a key set to its default, is not a change")
    func sameValueOtherText() throws {
        let old = try settings("subscriber:\n  busy_coalesce_delay: 10ms\n")
        #expect(old.changedKeys(to: try settings("subscriber:\n  busy_coalesce_delay: 0.01\n")) == [])
        #expect(old.changedKeys(to: ConfigSettings()) == [], "10ms is the default")
        #expect(old.changedKeys(to: try settings("subscriber:\n  busy_coalesce_delay: 0\n")) == ["subscriber.busy_coalesce_delay"])
    }

    @Test("keys added or removed, from the file or the environment, in file order")
    func addedAndRemoved() throws {
        let old = try settings("sse:\n  retry: 5s\n")
        let new = try settings(
            "limits:\n  publish_rate: 50\n", environment: ["PUSHD_SUBSCRIBER_SLOW_POLICY": "drop"])
        #expect(old.changedKeys(to: new) == ["limits.publish_rate", "sse.retry", "subscriber.slow_policy"].sorted {
            a, b in
            ConfigKeys.all.firstIndex { $0.path == a }! < ConfigKeys.all.firstIndex { $0.path == b }!
        })
    }

    @Test("a changed secret is named by its key only")
    func secretKeys() throws {
        let old = try settings("auth:\n  publish:\n    tokens: [\"first-secret-token-0123456789\"]\n")
        let new = try settings("auth:\n  publish:\n    tokens: [\"second-secret-token-0123456789\"]\n")
        let changed = old.changedKeys(to: new)
        #expect(changed == ["auth.publish.tokens"])
        #expect(!changed.joined().contains("secret-token"))
    }
}

@Suite("Settings in force after a reload that needs a restart for some keys")
struct ConfigSettingsKeepingTests {
    @Test("restart-only groups keep their running values, so only applied keys count as changed")
    func keepingRestartGroups() throws {
        let running = try settings("listen: [\"127.0.0.1:8080\"]\nloop:\n  ring_entries: 4096\nsse:\n  retry: 5s\n")
        let new = try settings("listen: [\"127.0.0.1:9090\"]\nloop:\n  ring_entries: 1024\nsse:\n  retry: 7s\n")
        let inForce = new.keeping(["listen", "loop.*"], from: running)
        #expect(running.changedKeys(to: inForce) == ["sse.retry"])
        // The next reload with the same file: nothing applied changed (listen and loop are still
        // pending a restart, which the reload warns about separately).
        #expect(inForce.changedKeys(to: new.keeping(["listen", "loop.*"], from: inForce)) == [])
        // Setting a restart-only key back to its running value is no change either.
        let back = try settings("listen: [\"127.0.0.1:8080\"]\nloop:\n  ring_entries: 4096\nsse:\n  retry: 7s\n")
        #expect(inForce.changedKeys(to: back.keeping([], from: inForce)) == [])
    }
}
