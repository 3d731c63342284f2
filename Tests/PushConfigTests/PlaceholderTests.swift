import Testing
@testable import PushConfig
