import Synchronization

/// A 16550A-compatible UART (the 8250 family) at a port window of 8 bytes, e.g. 0x3f8 / IRQ 4.
///
/// Output bytes go to `output` as the guest writes them; input arrives through `enqueueInput`
/// (from any thread) and raises the receive interrupt when the guest enabled it. No real baud
/// rate: transmit is instant, so the transmitter is always empty.
public final class Serial8250: BusDevice {
    // Register offsets.
    static let data = 0, interruptEnable = 1, interruptIdentification = 2, lineControl = 3
    static let modemControl = 4, lineStatus = 5, modemStatus = 6, scratch = 7
    // Bits.
    static let ierReceivedData: UInt8 = 0x01, ierTransmitEmpty: UInt8 = 0x02
    static let iirNoInterrupt: UInt8 = 0x01, iirTransmitEmpty: UInt8 = 0x02, iirReceivedData: UInt8 = 0x04
    static let iirFIFOEnabled: UInt8 = 0xc0
    static let lcrDivisorLatch: UInt8 = 0x80
    static let lsrDataReady: UInt8 = 0x01, lsrTransmitEmpty: UInt8 = 0x20, lsrTransmitterIdle: UInt8 = 0x40
    static let mcrLoopback: UInt8 = 0x10
    /// Input is dropped beyond this many pending bytes (the guest is not reading).
    public static let inputCapacity = 4096
    /// Loopback bytes are dropped beyond this many pending bytes: a real 16550's receive FIFO.
    public static let loopbackFIFO = 16

    struct State {
        var interruptEnable: UInt8 = 0
        var lineControl: UInt8 = 0x03
        var modemControl: UInt8 = 0x08
        var scratch: UInt8 = 0
        var divisorLow: UInt8 = 0x0c  // 9600 baud
        var divisorHigh: UInt8 = 0
        var fifoControl: UInt8 = 0
        var transmitEmptyPending = false
        var input = ByteRing(capacity: Serial8250.inputCapacity)

        var hasInput: Bool { !input.isEmpty }

        var identification: UInt8 {
            if hasInput && interruptEnable & Serial8250.ierReceivedData != 0 { return Serial8250.iirReceivedData }
            if transmitEmptyPending && interruptEnable & Serial8250.ierTransmitEmpty != 0 {
                return Serial8250.iirTransmitEmpty
            }
            return Serial8250.iirNoInterrupt
        }
    }

    private let state = Mutex(State())
    /// Memory held for received bytes (tests: it must not grow with traffic).
    var inputStorageSize: Int { state.withLock { $0.input.storageSize } }
    private let output: @Sendable ([UInt8]) -> Void
    private let interrupt: @Sendable () -> Void

    /// - Parameters:
    ///   - output: receives each transmitted byte (called on the vCPU thread; keep it quick).
    ///   - interrupt: raises the UART's IRQ line (an edge on the in-kernel irqchip).
    public init(output: @escaping @Sendable ([UInt8]) -> Void, interrupt: @escaping @Sendable () -> Void) {
        self.output = output
        self.interrupt = interrupt
    }

    /// The registers the guest's driver set, for a snapshot (docs/snapshots.md): interrupt enable,
    /// line and modem control, scratch, divisor, FIFO control, and a pending transmit-empty
    /// interrupt. Received bytes not yet read are not kept.
    public func savedRegisters() -> [UInt8] {
        state.withLock { s in
            [s.interruptEnable, s.lineControl, s.modemControl, s.scratch, s.divisorLow, s.divisorHigh, s.fifoControl,
             s.transmitEmptyPending ? 1 : 0]
        }
    }

    /// Sets back what `savedRegisters` returned; false (and nothing changed) for bytes of
    /// another shape.
    public func restoreRegisters(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == 8, bytes[7] <= 1 else { return false }
        state.withLock { s in
            s.interruptEnable = bytes[0]
            s.lineControl = bytes[1]
            s.modemControl = bytes[2]
            s.scratch = bytes[3]
            s.divisorLow = bytes[4]
            s.divisorHigh = bytes[5]
            s.fifoControl = bytes[6]
            s.transmitEmptyPending = bytes[7] == 1
        }
        return true
    }

    /// Queues bytes for the guest to read and interrupts it if it asked for receive interrupts.
    public func enqueueInput(_ bytes: [UInt8]) {
        let raise = state.withLock { s -> Bool in
            for byte in bytes {
                guard s.input.append(byte) else { break }
            }
            return s.identification == Self.iirReceivedData
        }
        if raise { interrupt() }
    }

    public func read(offset: UInt64, size: Int) -> [UInt8] {
        var raise = false
        let value: UInt8 = state.withLock { s in
            let dlab = s.lineControl & Self.lcrDivisorLatch != 0
            switch Int(offset) {
            case Self.data where dlab: return s.divisorLow
            case Self.data:
                guard let byte = s.input.popFirst() else { return 0 }
                raise = s.hasInput && s.identification == Self.iirReceivedData
                return byte
            case Self.interruptEnable where dlab: return s.divisorHigh
            case Self.interruptEnable: return s.interruptEnable
            case Self.interruptIdentification:
                let id = s.identification
                if id == Self.iirTransmitEmpty { s.transmitEmptyPending = false }  // reading IIR clears THRE
                return id | (s.fifoControl & 0x01 != 0 ? Self.iirFIFOEnabled : 0)
            case Self.lineControl: return s.lineControl
            case Self.modemControl: return s.modemControl
            case Self.lineStatus:
                return Self.lsrTransmitEmpty | Self.lsrTransmitterIdle | (s.hasInput ? Self.lsrDataReady : 0)
            case Self.modemStatus:
                if s.modemControl & Self.mcrLoopback != 0 {
                    // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                    let m = s.modemControl
                    return ((m & 0x01) << 5) | ((m & 0x02) << 3) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
                }
                return 0xb0  // DCD, DSR, CTS
            case Self.scratch: return s.scratch
            default: return 0
            }
        }
        if raise { interrupt() }
        return [UInt8](repeating: value, count: 1) + [UInt8](repeating: 0, count: max(0, size - 1))
    }

    public func write(offset: UInt64, data: [UInt8]) -> BusWriteOutcome {
        guard let value = data.first else { return .done }
        var transmitted: UInt8? = nil
        var raise = false
        state.withLock { s in
            let dlab = s.lineControl & Self.lcrDivisorLatch != 0
            switch Int(offset) {
            case Self.data where dlab: s.divisorLow = value
            case Self.data:
                if s.modemControl & Self.mcrLoopback != 0 {
                    if s.input.count < Self.loopbackFIFO { _ = s.input.append(value) }
                } else {
                    transmitted = value
                }
                s.transmitEmptyPending = true
            case Self.interruptEnable where dlab: s.divisorHigh = value
            case Self.interruptEnable:
                s.interruptEnable = value & 0x0f
                // The transmitter is always empty: enabling its interrupt fires it at once.
                if value & Self.ierTransmitEmpty != 0 { s.transmitEmptyPending = true }
            case Self.interruptIdentification: s.fifoControl = value
            case Self.lineControl: s.lineControl = value
            case Self.modemControl: s.modemControl = value & 0x1f
            case Self.scratch: s.scratch = value
            default: break
            }
            raise = s.identification != Self.iirNoInterrupt
        }
        if let transmitted { output([transmitted]) }
        if raise { interrupt() }
        return .done
    }
}

/// Bytes waiting for the guest: a ring of fixed capacity that never grows or needs compacting.
struct ByteRing {
    private var storage: [UInt8]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) { storage = [UInt8](repeating: 0, count: capacity) }

    var isEmpty: Bool { count == 0 }
    /// The bytes of memory the ring holds, whatever has passed through it.
    var storageSize: Int { storage.count }

    /// Appends `byte` unless the ring is full; false when it was dropped.
    mutating func append(_ byte: UInt8) -> Bool {
        guard count < storage.count else { return false }
        storage[(head + count) % storage.count] = byte
        count += 1
        return true
    }

    mutating func popFirst() -> UInt8? {
        guard count > 0 else { return nil }
        let byte = storage[head]
        head = (head + 1) % storage.count
        count -= 1
        return byte
    }
}
