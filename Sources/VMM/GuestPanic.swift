/// Finds a Linux guest's panic in its console output: "Kernel panic - not syncing: <message>".
///
/// The guest reboots right after a panic (`panic=-1`), which on its own looks like a clean
/// reboot; the VMM feeds every console byte through this so the VM stops with `.guestPanic`
/// instead. The message is cut at the end of its line or at `messageLimit` bytes. A hostile
/// guest can print the marker itself: it only ends its own VM.
struct PanicDetector {
    static let marker = Array("Kernel panic - not syncing: ".utf8)
    static let messageLimit = 240

    private var window: [UInt8] = []
    private var message: [UInt8]?
    private var reported = false

    /// Returns the panic message once, when its line is complete.
    mutating func feed(_ bytes: [UInt8]) -> String? {
        guard !reported else { return nil }
        for byte in bytes {
            if message != nil {
                if byte == 0x0a || byte == 0x0d || message!.count >= Self.messageLimit {
                    reported = true
                    return String(decoding: message!, as: UTF8.self)
                }
                message!.append(byte)
                continue
            }
            window.append(byte)
            if window.count > Self.marker.count { window.removeFirst() }
            if window == Self.marker { message = [] }
        }
        return nil
    }
}

/// The console tap a VM installs before it exists: calls `onPanic` once with the message.
final class PanicWatch: Sendable {
    private let detector = Locked(PanicDetector())
    private let action = Locked<(@Sendable (String) -> Void)?>(nil)

    func onPanic(_ body: @escaping @Sendable (String) -> Void) { action.mutate { $0 = body } }

    func feed(_ bytes: [UInt8]) {
        guard let message = detector.mutate({ $0.feed(bytes) }) else { return }
        action.value?(message)
    }
}
