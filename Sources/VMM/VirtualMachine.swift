import Boot
import Devices
import GuestMemory
import KVM
import Synchronization
import SystemSupport
import VirtIO

/// What to run in the VM.
public enum GuestPayload: Sendable {
    /// A Linux kernel (vmlinux ELF or bzImage), optional initramfs, command line.
    case linux(kernel: [UInt8], initrd: [UInt8]?, cmdline: Cmdline)
    /// Raw 16-bit real-mode code copied to `address` and entered with CS:IP = 0:address (tests).
    case realMode(code: [UInt8], address: UInt64)
    /// A VM saved by `saveSnapshot`, read with `SnapshotFile.read`: guest RAM mapped private
    /// from `file`, the VM's and vCPUs' state set back. The configuration must match the saved
    /// VM's (memory size, vCPUs, irqchip, CPU template).
    case snapshot(SnapshotFile, file: FileDescriptor)
}

public struct VMConfig: Sendable {
    public var memorySize: UInt64
    public var vcpus: Int
    public var payload: GuestPayload
    public var cpuTemplate: CPUTemplate
    /// In-kernel PIC/IOAPIC/LAPIC and PIT; without it HLT exits to userspace (tiny guests).
    public var irqchip: Bool
    /// Receives every byte the guest writes to the serial port.
    public var consoleOutput: @Sendable ([UInt8]) -> Void
    /// virtio-mmio devices, in slot order: device i at Layout.virtioMMIOStart + i * 4 KiB with
    /// GSI firstVirtioIRQ + i, announced on a Linux guest's command line.
    public var virtioDevices: [VirtioDeviceSpec]
    /// vCPU threads load their seccomp allowlist before the first KVM_RUN (ThreadConfinement.vcpu).
    /// The device thread always loads its own (.device).
    public var confineVcpus: Bool

    public init(
        memorySize: UInt64, vcpus: Int = 1, payload: GuestPayload, cpuTemplate: CPUTemplate = .host,
        irqchip: Bool = true, consoleOutput: @escaping @Sendable ([UInt8]) -> Void = { _ in },
        virtioDevices: [VirtioDeviceSpec] = [], confineVcpus: Bool = true
    ) {
        self.memorySize = memorySize
        self.vcpus = vcpus
        self.payload = payload
        self.cpuTemplate = cpuTemplate
        self.irqchip = irqchip
        self.consoleOutput = consoleOutput
        self.virtioDevices = virtioDevices
        self.confineVcpus = confineVcpus
    }
}

/// A built VM: memory mapped, devices on their buses, vCPUs ready at the kernel entry.
///
/// `start()` runs one thread per vCPU and one device thread; `wait()` returns why the VM stopped
/// (after joining every thread); `stop()`, `pause()` and `resume()` may be called from any
/// thread. Threads: vCPU i is named "vcpu<i>", the device event loop "virtio-devices"; each loads
/// its seccomp allowlist (ThreadConfinement) before it runs guest code or serves a device.
public final class VirtualMachine: Sendable {
    public let vm: VM
    public let memory: MmapGuestMemory
    public let vcpus: [Vcpu]
    public let pio = Bus()
    public let mmio = Bus()
    public let serial: Serial8250
    public let bootTimer: BootTimer
    /// The virtio-mmio slots, in `config.virtioDevices` order.
    public let virtioSlots: [VirtioMmioSlot]
    private let threads: [VMMThread]
    private let deviceLoop: DeviceEventLoop?
    private let stopReason = Mutex<StopReason?>(nil)
    private let started = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    let pauseControl: PauseControl
    private let panicWatch: PanicWatch
    private let confineVcpus: Bool
    /// Whether the VM has the in-kernel irqchip and PIT (`VMConfig.irqchip`).
    let hasIrqchip: Bool
    /// The CPUID entries each vCPU was given.
    let cpuid: [[CPUIDEntry]]

    public init(config: VMConfig, kvm: Kvm? = nil) throws(VMMError) {
        let kvm = try wrap { () throws(KVMError) -> Kvm in
            if let kvm { return kvm }
            return try Kvm()
        }
        let maxVcpus = kvm.maxVcpus
        guard config.vcpus >= 1, config.vcpus <= maxVcpus else {
            throw .invalidVcpuCount(requested: config.vcpus, maximum: maxVcpus)
        }
        if case .linux = config.payload, config.memorySize < BootConfigurator.minimumMemory {
            throw .boot(.memoryTooSmall(size: config.memorySize, minimum: BootConfigurator.minimumMemory))
        }
        let vm = try wrap { () throws(KVMError) in try kvm.createVM() }
        let regions = Layout.ramRegions(size: config.memorySize)
        let memory: MmapGuestMemory
        if case .snapshot(let snapshot, let file) = config.payload {
            try Self.check(snapshot, against: config, regions: regions)
            do {
                memory = try MmapGuestMemory(snapshot: snapshot, fd: file)
            } catch {
                throw .snapshot("\(error)")
            }
        } else {
            do {
                memory = try MmapGuestMemory(regions: regions.map { GuestRegion(start: GuestAddress($0.start), size: $0.size) })
            } catch {
                throw .allocateMemory(size: config.memorySize, error)
            }
        }
        try wrap { () throws(KVMError) in
            for (slot, region) in regions.enumerated() {
                try vm.setUserMemoryRegion(
                    slot: UInt32(slot), guestAddress: region.start, size: region.size,
                    hostAddress: memory.hostAddress(ofRegion: slot))
            }
            try vm.setIdentityMapAddress(Layout.kvmIdentityMapStart)
            try vm.setTSSAddress(Layout.kvmTSSStart)
            if config.irqchip {
                try vm.createIRQChip()
                try vm.createPIT()
            }
        }

        // Legacy devices.
        let irqchip = config.irqchip
        let consoleOutput = config.consoleOutput
        let panicWatch = PanicWatch()
        self.panicWatch = panicWatch
        serial = Serial8250(output: { bytes in
            consoleOutput(bytes)
            panicWatch.feed(bytes)
        }, interrupt: { [vm] in
            guard irqchip else { return }
            try? vm.setIRQLine(Layout.serialIRQ, high: true)
            try? vm.setIRQLine(Layout.serialIRQ, high: false)
        })
        bootTimer = BootTimer()
        do {
            try pio.register(serial, base: Layout.serialPort, length: Layout.serialPortSize)
            try pio.register(I8042(), base: Layout.i8042Port, length: Layout.i8042PortSize)
            try mmio.register(bootTimer, base: Layout.bootTimerMMIO, length: 0x1000)
        } catch {
            throw .bus(error)
        }
        let slots = try Self.makeVirtioSlots(config, vm: vm, memory: memory, mmio: mmio)

        // Guest payload and vCPUs.
        let supported = try wrap { () throws(KVMError) in try kvm.supportedCPUID() }
        // What each vCPU is given, kept for a snapshot: a restore refuses a host that gives other.
        let cpuid = (0..<config.vcpus).map { config.cpuTemplate.apply(to: supported, vcpu: $0, of: config.vcpus) }
        var vcpus: [Vcpu] = []
        switch config.payload {
        case .linux(let kernel, let initrd, var cmdline):
            let boot: BootCPUState
            do throws(CmdlineError) {
                for slot in slots { try cmdline.insertString(slot.cmdlineEntry) }
            } catch {
                throw .boot(.cmdline(error))
            }
            do {
                boot = try BootConfigurator.setup(
                    memory: memory, kernelImage: kernel, initrd: initrd, cmdline: cmdline, vcpus: config.vcpus)
            } catch {
                throw .boot(error)
            }
            for id in 0..<config.vcpus {
                let vcpu = try wrap { () throws(KVMError) in
                    let vcpu = try vm.createVcpu(id: id)
                    try vcpu.setCPUID(cpuid[id])
                    if irqchip { try vcpu.configureLocalInterrupts() }
                    return vcpu
                }
                // Secondary vCPUs wait for INIT/SIPI from the BSP in their reset state.
                if id == 0 { try wrap { () throws(KVMError) in try VcpuSetup.configure(vcpu, boot: boot) } }
                vcpus.append(vcpu)
            }
        case .realMode(let code, let address):
            do {
                try memory.write(code, at: GuestAddress(address))
            } catch {
                throw .boot(.memory(error as? GuestMemoryError ?? .outOfBounds(address: GuestAddress(address), length: 0)))
            }
            let vcpu = try wrap { () throws(KVMError) in
                let vcpu = try vm.createVcpu(id: 0)
                try vcpu.setCPUID(cpuid[0])
                var sregs = try vcpu.specialRegisters()
                sregs.cs.base = 0
                sregs.cs.selector = 0
                try vcpu.setSpecialRegisters(sregs)
                var regs = try vcpu.registers()
                regs.rip = address
                regs.rflags = 0x2
                try vcpu.setRegisters(regs)
                return vcpu
            }
            vcpus.append(vcpu)
        case .snapshot(let snapshot, _):
            guard snapshot.devices[Self.cpuidRecordName] == Self.cpuidRecord(cpuid) else {
                throw .snapshot("this host gives its vCPUs another CPUID than the saved VM's (another CPU, KVM or CPU template)")
            }
            if let saved = snapshot.devices["serial"], !serial.restoreRegisters(saved) {
                throw .snapshot("the serial port's state is \(saved.count) bytes, not 8")
            }
            if let saved = snapshot.vm { try wrap { () throws(KVMError) in try vm.restoreState(saved) } }
            for (id, state) in snapshot.vcpus.enumerated() {
                let vcpu = try wrap { () throws(KVMError) in
                    let vcpu = try vm.createVcpu(id: id)
                    try vcpu.setCPUID(cpuid[id])
                    try vcpu.restoreState(state)
                    return vcpu
                }
                vcpus.append(vcpu)
            }
            // After the interrupt controllers: a device's restore may raise its interrupt.
            for (index, slot) in slots.enumerated() {
                guard let record = snapshot.devices[Self.virtioRecordName(index)] else { continue }
                do throws(TransportStateError) {
                    try slot.restore(record)
                } catch {
                    throw .snapshot("virtio device \(index): \(error)")
                }
            }
        }
        self.vm = vm
        self.memory = memory
        self.vcpus = vcpus
        self.threads = vcpus.map { _ in VMMThread() }
        self.confineVcpus = config.confineVcpus
        self.hasIrqchip = config.irqchip
        self.cpuid = cpuid
        self.virtioSlots = slots
        do {
            self.deviceLoop = slots.isEmpty ? nil : try DeviceEventLoop(slots: slots)
            self.pauseControl = try PauseControl()
        } catch {
            throw .virtioSetup(device: -1, error)
        }
        panicWatch.onPanic { [weak self] message in self?.stop(.guestPanic(message)) }
    }

    /// Starts one thread per vCPU.
    public func start() throws(VMMError) {
        guard !started.exchange(true, ordering: .acquiringAndReleasing) else { throw .alreadyStarted }
        do {
            try deviceLoop?.start()
        } catch {
            stop(.runFailed("device thread start: \(error)"))
            throw .virtioSetup(device: -1, error)
        }
        for (vcpu, thread) in zip(vcpus, threads) {
            do {
                try thread.start(name: "vcpu\(vcpu.id)", confinement: confineVcpus ? .vcpu : nil) { [self] in runLoop(vcpu) }
            } catch {
                stop(.runFailed("thread start: \(error)"))
                throw .startThread(vcpu: vcpu.id, error)
            }
        }
    }

    /// Blocks until every vCPU thread has ended and returns why the VM stopped.
    public func wait() -> StopReason {
        for thread in threads { thread.join() }
        deviceLoop?.stop()
        return stopReason.withLock { $0 } ?? .stopRequested
    }

    /// Stops the VM from any thread; the first reason recorded wins.
    public func stop(_ reason: StopReason = .stopRequested) {
        stopReason.withLock { if $0 == nil { $0 = reason } }
        stopping.store(true, ordering: .releasing)
        pauseControl.release()
        for vcpu in vcpus { vcpu.requestImmediateExit() }
        for thread in threads { thread.kick() }
        deviceLoop?.requestStop()
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }
    var hasStarted: Bool { started.load(ordering: .acquiring) }

    /// Interrupts every vCPU's KVM_RUN (for pause).
    func kickVcpus() {
        for vcpu in vcpus { vcpu.requestImmediateExit() }
        for thread in threads { thread.kick() }
    }

    /// The reason the VM stopped, once it has.
    public var reason: StopReason? { stopReason.withLock { $0 } }

    private func runLoop(_ vcpu: Vcpu) {
        while !stopping.load(ordering: .acquiring) {
            if pauseControl.isPaused {
                park(vcpu)
                continue
            }
            let exit: VcpuExit
            do {
                exit = try vcpu.runOnce()
            } catch {
                stop(.runFailed("\(error)"))
                return
            }
            switch handle(exit, pio: pio, mmio: mmio) {
            case .resume: continue
            case .completeRead(let bytes): vcpu.completeRead(bytes)
            case .injectException(let vector, let length):
                do {
                    try vcpu.injectException(vector: vector, instructionLength: length)
                } catch {
                    stop(.runFailed("\(error)"))
                    return
                }
            case .stop(.tripleFault):
                stop(.tripleFault(vcpu: vcpu.id, registers: RegisterDump.summary(vcpu)))
                return
            case .stop(let reason):
                stop(reason)
                return
            }
        }
    }
}

/// Runs a KVM-layer operation, wrapping its error.
@inline(__always)
func wrap<R>(_ body: () throws(KVMError) -> R) throws(VMMError) -> R {
    do { return try body() } catch { throw .kvm(error) }
}
