import Testing
@testable import PushLoop
