import GuestMemory

/// Errors of kernel loading and boot-structure setup; each case names what was wrong.
public enum BootError: Error, Equatable, Sendable, CustomStringConvertible {
    case notAKernel(String)
    case elf(String)
    case bzImage(String)
    case kernelDoesNotFit(start: UInt64, end: UInt64, memory: UInt64)
    case initrdDoesNotFit(size: UInt64, lowest: UInt64, highest: UInt64)
    case memoryTooSmall(size: UInt64, minimum: UInt64)
    case cmdline(CmdlineError)
    case tooManyVcpus(Int)
    case memory(GuestMemoryError)

    public var description: String {
        switch self {
        case .notAKernel(let why): "not a kernel image: \(why)"
        case .elf(let why): "bad vmlinux ELF: \(why)"
        case .bzImage(let why): "bad bzImage: \(why)"
        case .kernelDoesNotFit(let s, let e, let m):
            "kernel needs guest memory 0x\(String(s, radix: 16))-0x\(String(e, radix: 16)) but the guest has \(m >> 20) MiB"
        case .initrdDoesNotFit(let size, let lo, let hi):
            "initramfs of \(size) bytes does not fit in guest RAM between 0x\(String(lo, radix: 16)) and 0x\(String(hi, radix: 16)) (give the guest more memory)"
        case .memoryTooSmall(let s, let m): "guest memory \(s >> 20) MiB is below the minimum of \(m >> 20) MiB"
        case .cmdline(let e): "kernel command line: \(e)"
        case .tooManyVcpus(let n): "MP table cannot describe \(n) vCPUs"
        case .memory(let e): "guest memory: \(e)"
        }
    }
}

/// Runs a guest-memory access, wrapping its error.
@inline(__always)
func mem<R>(_ body: () throws -> R) throws(BootError) -> R {
    do { return try body() } catch let e as GuestMemoryError { throw .memory(e) } catch {
        throw .memory(.outOfBounds(address: GuestAddress(0), length: 0))
    }
}
