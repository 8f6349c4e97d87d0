/// The i8042 keyboard controller, only as far as a guest needs it to reset the machine.
///
/// Ports 0x60 (data) and 0x64 (status/command) as one window of 5 bytes based at 0x60.
/// Command 0xfe on port 0x64 pulses the CPU reset line: the VMM stops the VM.
public final class I8042: BusDevice {
    static let commandOffset: UInt64 = 4
    static let resetCommand: UInt8 = 0xfe

    public init() {}

    public func read(offset: UInt64, size: Int) -> [UInt8] {
        // Status 0: output buffer empty, input buffer empty; data 0.
        [UInt8](repeating: 0, count: max(1, size))
    }

    public func write(offset: UInt64, data: [UInt8]) -> BusWriteOutcome {
        if offset == Self.commandOffset && data.first == Self.resetCommand { return .resetRequested }
        return .done
    }
}
