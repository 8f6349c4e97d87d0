import Glibc
import KVM
import Synchronization
import SystemSupport

/// Parks vCPU threads while the VM is paused: a flag, a count of parked threads, and an
/// eventfd that is readable whenever the VM is not paused (so parked threads sleep in poll).
final class PauseControl: Sendable {
    private let paused = Atomic<Bool>(false)
    private let parkedCount = Atomic<Int>(0)
    private let gate: EventFD
    /// Serialises pause and resume.
    private let transition = Mutex(())

    init() throws(Errno) {
        gate = try EventFD(initialValue: 1)
    }

    var isPaused: Bool { paused.load(ordering: .acquiring) }
    var parked: Int { parkedCount.load(ordering: .acquiring) }

    func withTransition<R>(_ body: () throws(VMMError) -> R) throws(VMMError) -> R {
        try transition.withLock { (_) throws(VMMError) -> R in try body() }
    }

    func close() {
        _ = try? gate.consume()
        paused.store(true, ordering: .releasing)
    }

    /// Opens the gate: parked threads go on (resume, or stop).
    func release() {
        paused.store(false, ordering: .releasing)
        try? gate.signal()
    }

    /// Called by a vCPU thread: sleeps until released.
    func park(while shouldWait: () -> Bool) {
        parkedCount.add(1, ordering: .acquiringAndReleasing)
        while isPaused && shouldWait() {
            var p = pollfd(fd: gate.fd.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 1000)
        }
        parkedCount.subtract(1, ordering: .acquiringAndReleasing)
    }
}

extension VirtualMachine {
    /// Parks every vCPU thread (out of KVM_RUN, sleeping) and returns once all are parked.
    /// Devices keep serving host-side work; the guest runs no instruction until `resume()`.
    public func pause() throws(VMMError) {
        try pauseControl.withTransition { () throws(VMMError) in
            guard !isStopping else { throw .invalidState(operation: "pause", state: "stopped") }
            guard !pauseControl.isPaused else { throw .invalidState(operation: "pause", state: "paused") }
            pauseControl.close()
            kickVcpus()
            let deadline = ContinuousClock.now + .seconds(10)
            while pauseControl.parked < vcpus.count, !isStopping {
                guard ContinuousClock.now < deadline else {
                    pauseControl.release()
                    throw .invalidState(operation: "pause", state: "unresponsive (vCPUs not parked in 10 s)")
                }
                usleep(1000)
            }
        }
    }

    /// Lets parked vCPUs run again.
    public func resume() throws(VMMError) {
        try pauseControl.withTransition { () throws(VMMError) in
            guard !isStopping else { throw .invalidState(operation: "resume", state: "stopped") }
            guard pauseControl.isPaused else { throw .invalidState(operation: "resume", state: "running") }
            pauseControl.release()
        }
    }

    /// Whether the vCPUs are parked.
    public var isPaused: Bool { pauseControl.isPaused }

    func park(_ vcpu: Vcpu) {
        // KVM completes an I/O or MMIO exit (the data of a read we answered) only at the next
        // KVM_RUN; with immediate_exit set that run completes it and returns at once, so what a
        // snapshot captures of a parked vCPU is consistent (KVM's API documentation, KVM_RUN).
        vcpu.requestImmediateExit(true)
        _ = try? vcpu.runOnce()
        pauseControl.park { !isStopping }
        if !isStopping { vcpu.requestImmediateExit(false) }
    }
}
