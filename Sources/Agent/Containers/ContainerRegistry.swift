// The containers of the sandbox by id, as a small state machine per id:
//   (absent) -create-> creating -published-> ready -remove-> removing -(gone)
// A creating or removing id refuses every other operation, and a second create of any id
// present is `duplicateContainer` at once, before anything is spawned.
actor ContainerRegistry {
    enum Slot {
        case creating
        case ready(ContainerRecord)
        case removing
    }

    private var slots: [String: Slot] = [:]

    func reserve(_ id: String) throws(AgentError) {
        guard slots[id] == nil else { throw .duplicateContainer(id) }
        slots[id] = .creating
    }

    /// Ends a reservation: the record is published, or (nil) the id is free again.
    func publish(_ id: String, _ record: ContainerRecord?) {
        slots[id] = record.map { .ready($0) }
    }

    func container(_ id: String) throws(AgentError) -> ContainerRecord {
        switch slots[id] {
        case .ready(let r): return r
        case .creating: throw .invalidState("container \(id) is still being created")
        case .removing: throw .invalidState("container \(id) is being removed")
        case nil: throw .unknownContainer(id)
        }
    }

    /// Takes the container out of service for removal.
    func beginRemoval(_ id: String) throws(AgentError) -> ContainerRecord {
        let r = try container(id)
        slots[id] = .removing
        return r
    }

    func finishRemoval(_ id: String) {
        slots[id] = nil
    }

    /// Every published container (DestroySandbox, OOM watching).
    func all() -> [ContainerRecord] {
        slots.values.compactMap { if case .ready(let r) = $0 { r } else { nil } }
    }

    var isEmpty: Bool { slots.isEmpty }
}
