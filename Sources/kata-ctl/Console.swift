import Glibc
import VMM

/// Copies stdin to the guest's serial port on a detached thread (ends at EOF).
enum ConsoleInput {
    static func forward(to vm: VirtualMachine) {
        detach {
            var buffer = [UInt8](repeating: 0, count: 256)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                vm.serial.enqueueInput(Array(buffer[0..<n]))
            }
        }
    }
}

/// Stops the VM after a timeout.
enum Watchdog {
    static func stop(_ vm: VirtualMachine, after seconds: Double) {
        detach {
            var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
            var remaining = timespec()
            while nanosleep(&ts, &remaining) != 0 && errno == EINTR { ts = remaining }
            vm.stop()
        }
    }
}

private final class Box {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Runs `body` on a new detached POSIX thread.
func detach(_ body: @escaping @Sendable () -> Void) {
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    if pthread_create(&thread, &attr, { arg in
        guard let arg else { return nil }
        Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().body()
        return nil
    }, box) != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
    }
    pthread_attr_destroy(&attr)
}
