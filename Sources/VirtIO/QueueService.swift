import GuestMemory

/// The loop every request queue runs, written once: TX of net and vsock, the request queues of
/// virtio-fs and virtio-rng's single queue.
extension VirtioDevice {
    /// Serves queue `index` until the driver offers nothing new. Pops each available chain,
    /// hands it to `handle` (which returns the bytes it wrote into the chain's writable buffers)
    /// and returns it through the used ring; interrupts once per pass if the driver asks for it.
    /// Then re-arms kicks (`rearmQueue`) and, if buffers arrived meanwhile, goes round again, at
    /// most `rounds` times: the rest waits for the next kick.
    ///
    /// Returns the error that broke the queue, if one did: the device logs it and asks the
    /// driver for a reset, its own way. The queue access is not held while `handle` runs, so the
    /// handler may use the device freely.
    public func serveQueue(
        _ index: Int, memory: some GuestMemory, interrupt: (any InterruptTrigger)?, rounds: Int = .max,
        _ handle: (DescriptorChain) -> UInt32
    ) -> QueueError? {
        var round = 0
        while round < rounds {
            round += 1
            var completed = false
            while true {
                let chain: DescriptorChain
                do {
                    guard let next = try queues[index].popAvailable(memory: memory) else { break }
                    chain = next
                } catch {
                    return error
                }
                let used = handle(chain)
                do {
                    try queues[index].addUsed(head: chain.head, length: used, memory: memory)
                } catch {
                    return error
                }
                completed = true
            }
            if completed { interruptIfNeeded(index, memory: memory, interrupt: interrupt) }
            do {
                guard try rearmQueue(index, memory: memory) else { return nil }
            } catch {
                return error
            }
        }
        return nil
    }

    /// Asks the driver to kick queue `index` at its next buffer: avail_event under EVENT_IDX
    /// (which a driver honours strictly: without it the guest stops kicking after its first
    /// buffers), used.flags without. True when buffers arrived before the request was visible:
    /// run the queue again.
    public func rearmQueue(_ index: Int, memory: some GuestMemory) throws(QueueError) -> Bool {
        try queues[index].setNotifications(enabled: true, memory: memory)
    }

    /// Raises a used-buffer interrupt on queue `index` if the driver wants one for the used
    /// entries added since the last decision.
    public func interruptIfNeeded(_ index: Int, memory: some GuestMemory, interrupt: (any InterruptTrigger)?) {
        if queues[index].needsNotification(memory: memory) { interrupt?.trigger(.usedBuffer) }
    }
}
