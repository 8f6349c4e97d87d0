import Glibc
import SystemSupport
import VMM

/// Copies stdin to the guest's serial port on a detached thread (ends at EOF).
enum ConsoleInput {
    static func forward(to vm: VirtualMachine) {
        // Without a thread to be had, there is no console input (as before): the VM still runs.
        try? WorkerThread.detach(name: "console-input") {
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
        try? WorkerThread.detach(name: "watchdog") {
            var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
            var remaining = timespec()
            while nanosleep(&ts, &remaining) != 0 && errno == EINTR { ts = remaining }
            vm.stop()
        }
    }
}
