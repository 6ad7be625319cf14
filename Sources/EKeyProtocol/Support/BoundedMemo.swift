import Synchronization

/// Results of a pure function of a text, kept so that the same text is not worked out
/// twice: a hit gives exactly what a miss would compute. Only results are kept, never
/// failures, and when full it starts over empty, so a flood of distinct texts costs time,
/// not memory.
public final class BoundedMemo<Value: Sendable>: Sendable {
    /// Texts kept at most.
    public let capacity: Int
    private let entries = Mutex<[String: Value]>([:])

    /// Creates an empty memo holding at most `capacity` texts.
    public init(capacity: Int) {
        self.capacity = capacity
    }

    /// The value remembered for exactly this text.
    public func value(for text: String) -> Value? {
        entries.withLock { $0[text] }
    }

    /// Remembers `value` for `text`.
    public func remember(_ value: Value, for text: String) {
        entries.withLock { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[text] = value
        }
    }

    /// Number of texts remembered.
    public var count: Int { entries.withLock { $0.count } }
}
