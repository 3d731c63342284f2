// Placeholder file replaced by the loop implementation: makeEventLoop(_:options:).
