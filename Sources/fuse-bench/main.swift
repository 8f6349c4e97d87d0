// fuse-bench: throughput of the FUSE server's READ/WRITE handlers and small-file operations,
// against the same work done with plain system calls on the host. No VM: requests are built in
// memory the way the virtio-fs driver lays them out (header+args in one segment, data in another).
//
// usage: fuse-bench [directory] [MiB]   (defaults: a fresh directory under /tmp, 256)

import FUSE
import Glibc

let arguments = CommandLine.arguments
let base = arguments.count > 1 ? arguments[1] : "/tmp"
let mebibytes = arguments.count > 2 ? Int(arguments[2]) ?? 256 : 256
let chunk = 1 << 20
let smallFiles = 5000

var template = Array((base + "/fuse-bench-XXXXXX").utf8CString)
guard mkdtemp(&template) != nil else { fatalError("mkdtemp: errno \(errno)") }
let root = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
defer { _ = system("rm -rf '\(root)'") }

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func le(_ value: UInt64, _ size: Int) -> [UInt8] {
    (0..<size).map { (index: Int) -> UInt8 in UInt8(truncatingIfNeeded: value >> UInt64(8 * index)) }
}

var unique: UInt64 = 0
@MainActor func request(_ opcode: FUSEOpcode, node: UInt64, _ args: [UInt8], extra: Int = 0) -> [UInt8] {
    unique += 1
    var bytes = le(UInt64(40 + args.count + extra), 4)
    bytes += le(UInt64(opcode.rawValue), 4)
    bytes += le(unique, 8)
    bytes += le(node, 8)
    bytes += [UInt8](repeating: 0, count: 8) + le(1, 4) + le(0, 4)
    return bytes + args
}

let server = FUSEServer(fileSystem: try PassthroughFileSystem(PassthroughConfiguration(root: root)))
var replyBuffer = [UInt8](repeating: 0, count: 4096)

/// Sends a request whose reply fits 4 KiB; returns (error, payload).
@MainActor func call(_ bytes: [UInt8]) -> (Int32, [UInt8]) {
    let outcome = bytes.withUnsafeBytes { input in
        replyBuffer.withUnsafeMutableBytes { output in
            server.handle(FUSERequestBuffers([input]), reply: FUSEReplyBuffers([output]))
        }
    }
    guard case .replied(let count) = outcome else { return (0, []) }
    let low = UInt32(replyBuffer[4]) | UInt32(replyBuffer[5]) << 8
    let high = UInt32(replyBuffer[6]) << 16 | UInt32(replyBuffer[7]) << 24
    let error = Int32(bitPattern: low | high)
    return (error, Array(replyBuffer[16..<count]))
}

func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
}

func name(_ string: String) -> [UInt8] { Array(string.utf8) + [0] }
func ioArgs(fh: UInt64, offset: UInt64, size: Int) -> [UInt8] {
    le(fh, 8) + le(offset, 8) + le(UInt64(size), 4) + [UInt8](repeating: 0, count: 20)
}

/// `value` with `decimals` digits after the point, right-aligned in `width`.
func fixed(_ value: Double, _ decimals: Int, width: Int = 0) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = String(scaled / Int(scale))
    var text = whole
    if decimals > 0 {
        let fraction = String(abs(scaled % Int(scale)))
        text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }
    return String(repeating: " ", count: max(0, width - text.count)) + text
}

func pad(_ label: String) -> String { label + String(repeating: " ", count: max(0, 24 - label.count)) }

func report(_ label: String, seconds: Double, bytes: Int) {
    let rate = Double(bytes) / seconds / 1_048_576
    print(pad(label) + fixed(rate, 1, width: 9) + " MiB/s   (" + fixed(seconds, 3) + " s)")
}

func reportOps(_ label: String, seconds: Double, count: Int) {
    print(pad(label) + fixed(Double(count) / seconds, 0, width: 9) + " ops/s   (" + fixed(seconds / Double(count) * 1e6, 2)
        + " us/op)")
}

// INIT
let initReply = call(request(.initialize, node: 0, le(7, 4) + le(36, 4) + le(1 << 20, 4) + le(0xffff_ffff, 4)
    + [UInt8](repeating: 0, count: 48)))
precondition(initReply.0 == 0, "INIT failed")

let total = mebibytes * chunk
var data = [UInt8](repeating: 0, count: chunk)
for index in 0..<chunk { data[index] = UInt8(truncatingIfNeeded: index &* 31) }
print("fuse-bench: \(mebibytes) MiB sequential in \(chunk >> 10) KiB requests, \(smallFiles) small files, in \(root)")

/// Best (shortest) time per label over the rounds; the machine is shared, so the minimum is the signal.
var best: [String: Double] = [:]
var order: [String] = []
@MainActor func record(_ label: String, _ seconds: Double) {
    if best[label] == nil { order.append(label) }
    best[label] = min(best[label] ?? .infinity, seconds)
}

// ---- host baseline: sequential write and read
@MainActor func hostSequential() {
    let fd = open(root + "/host.bin", O_RDWR | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0)
    var start = now()
    for pass in ["host pwrite (new file)", "host pwrite (overwrite)"] {
        start = now()
        for index in 0..<mebibytes {
            precondition(data.withUnsafeBytes { pwrite(fd, $0.baseAddress, chunk, off_t(index * chunk)) } == chunk)
        }
        record(pass, now() - start)
    }
    var sink = [UInt8](repeating: 0, count: chunk)
    start = now()
    for index in 0..<mebibytes {
        precondition(sink.withUnsafeMutableBytes { pread(fd, $0.baseAddress, chunk, off_t(index * chunk)) } == chunk)
    }
    record("host pread", now() - start)
    close(fd)
    unlink(root + "/host.bin")
}

// ---- through the FUSE server
@MainActor func fuseSequential() {
    let created = call(request(.create, node: 1, le(UInt64(O_RDWR | O_CREAT), 4) + le(0o100644, 4) + le(0, 8)
        + name("fuse.bin")))
    precondition(created.0 == 0, "CREATE failed \(created.0)")
    let node = u64(created.1, 0), fh = u64(created.1, 128)
    var writeReply = [UInt8](repeating: 0, count: 24)
    var start = now()
    for pass in ["FUSE WRITE (new file)", "FUSE WRITE (overwrite)"] {
        start = now()
        for index in 0..<mebibytes {
            let head = request(.write, node: node, ioArgs(fh: fh, offset: UInt64(index * chunk), size: chunk),
                               extra: chunk)
            let outcome = head.withUnsafeBytes { h in
                data.withUnsafeBytes { d in
                    writeReply.withUnsafeMutableBytes { r in
                        server.handle(FUSERequestBuffers([h, d]), reply: FUSEReplyBuffers([r]))
                    }
                }
            }
            precondition(outcome == .replied(24) && writeReply[4] == 0, "WRITE failed")
        }
        record(pass, now() - start)
    }
    var header = [UInt8](repeating: 0, count: 16)
    var sink = [UInt8](repeating: 0, count: chunk)
    start = now()
    for index in 0..<mebibytes {
        let bytes = request(.read, node: node, ioArgs(fh: fh, offset: UInt64(index * chunk), size: chunk))
        let outcome = bytes.withUnsafeBytes { input in
            header.withUnsafeMutableBytes { h in
                sink.withUnsafeMutableBytes { d in
                    server.handle(FUSERequestBuffers([input]), reply: FUSEReplyBuffers([h, d]))
                }
            }
        }
        precondition(outcome == .replied(16 + chunk), "READ failed")
    }
    record("FUSE READ", now() - start)
    precondition(sink == data, "data mismatch")
    _ = call(request(.release, node: node, le(fh, 8) + le(0, 16)))
    _ = call(request(.unlink, node: 1, name("fuse.bin")))
    _ = call(request(.forget, node: node, le(1, 8)))
}

// ---- small files: create+close, stat, delete
@MainActor func hostSmallFiles() {
    var start = now()
    for index in 0..<smallFiles {
        let fd = open(root + "/h\(index)", O_RDWR | O_CREAT | O_EXCL, 0o644)
        precondition(fd >= 0)
        close(fd)
    }
    record("host create+close", now() - start)
    var st = stat()
    start = now()
    for index in 0..<smallFiles { precondition(stat(root + "/h\(index)", &st) == 0) }
    record("host stat", now() - start)
    start = now()
    for index in 0..<smallFiles { precondition(unlink(root + "/h\(index)") == 0) }
    record("host unlink", now() - start)
}

@MainActor func fuseSmallFiles() {
    // What a guest `touch f`, `stat f`, `rm f` sends: CREATE+RELEASE, LOOKUP+GETATTR, UNLINK+FORGET.
    var nodes = [UInt64](repeating: 0, count: smallFiles)
    var start = now()
    for index in 0..<smallFiles {
        let created = call(request(.create, node: 1, le(UInt64(O_RDWR | O_CREAT | O_EXCL), 4) + le(0o100644, 4)
            + le(0, 8) + name("f\(index)")))
        precondition(created.0 == 0, "CREATE failed")
        nodes[index] = u64(created.1, 0)
        _ = call(request(.release, node: nodes[index], le(u64(created.1, 128), 8) + le(0, 16)))
    }
    record("FUSE CREATE+RELEASE", now() - start)
    start = now()
    for index in 0..<smallFiles {
        let found = call(request(.lookup, node: 1, name("f\(index)")))
        precondition(found.0 == 0)
        precondition(call(request(.getattr, node: nodes[index], le(0, 16))).0 == 0)
    }
    record("FUSE LOOKUP+GETATTR", now() - start)
    start = now()
    for index in 0..<smallFiles {
        precondition(call(request(.unlink, node: 1, name("f\(index)"))).0 == 0)
        _ = call(request(.forget, node: nodes[index], le(2, 8)))
    }
    record("FUSE UNLINK+FORGET", now() - start)
    precondition(server.fileSystem.inodeCount == 0, "inodes left: \(server.fileSystem.inodeCount)")
}

let rounds = 3
for round in 0..<rounds {
    // Alternate who goes first: the first writer after a large unlink pays for the file system's
    // cleanup, which is not what we measure.
    if round % 2 == 0 {
        hostSequential()
        fuseSequential()
    } else {
        fuseSequential()
        hostSequential()
    }
    hostSmallFiles()
    fuseSmallFiles()
}
print("best of \(rounds) rounds (host and FUSE alternate):")
for label in order {
    let seconds = best[label] ?? 0
    if label.contains("pwrite") || label.contains("pread") || label.contains("WRITE") || label.contains("READ") {
        report(label, seconds: seconds, bytes: total)
    } else {
        reportOps(label, seconds: seconds, count: smallFiles)
    }
}
