/// vhost-user messages QEMU 7.2 sent to a vsock backend, recorded on this machine with
/// scripts/record-vhost-user.py: `qemu-system-x86_64 -M microvm,acpi=off,memory-backend=mem
/// -object memory-backend-memfd,id=mem,size=128M,share=on -m 128M -accel tcg -kernel vmlinux
/// -chardev socket,id=c0,path=S -device vhost-user-vsock-device,chardev=c0` with our guest
/// kernel (its virtio_vsock driver reached DRIVER_OK, then the kernel panicked for lack of a
/// root fs and QEMU stopped the rings). The recorder offered features VERSION_1|PROTOCOL|EVENT_IDX|
/// INDIRECT and protocol features MQ|CONFIG. Columns: request, flags, payload hex, fds received.
let recordedQEMUVsockSequence = """
    1 1 - 0
    15 1 - 0
    16 1 0102000000000000 0
    17 1 - 0
    3 1 - 0
    1 1 - 0
    13 1 0000000000000000 1
    14 1 0000000000000000 1
    13 1 0100000000000000 1
    14 1 0100000000000000 1
    24 1 0000000008000000000000000000000000000000 0
    13 1 0000000000000000 1
    13 1 0100000000000000 1
    2 1 0000007000000000 0
    5 1 0200000000000000000000000000000000000f000000000000f0ffdf747f0000000000000000000000001000000000000000f0070000000000f00fe0747f00000000100000000000 2
    8 1 0000000000040000 0
    10 1 0000000000000000 0
    9 1 0000000000000000007074e2747f000000c074e2747f000000b074e2747f000000d0740200000000 0
    12 1 0000000000000000 1
    8 1 0100000000040000 0
    10 1 0100000000000000 0
    9 1 010000000000000000f075e2747f0000004076e2747f0000003076e2747f00000050760200000000 0
    12 1 0100000000000000 1
    18 1 0000000001000000 0
    18 1 0100000001000000 0
    13 1 0000000000000000 1
    13 1 0100000000000000 1
    18 1 0000000000000000 0
    18 1 0100000000000000 0
    11 1 0000000000000000 0
    11 1 0100000000000000 0
    13 1 0000000000000000 1
    13 1 0100000000000000 1
    """

/// One recorded line: the message and how many fds came with it.
struct RecordedMessage {
    var message: VhostUserMessageFields
    var fdCount: Int
}

struct VhostUserMessageFields {
    var request: UInt32
    var flags: UInt32
    var payload: [UInt8]
}

func parseRecording(_ text: String) -> [RecordedMessage] {
    text.split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count == 4, let request = UInt32(fields[0]), let flags = UInt32(fields[1]),
            let fds = Int(fields[3])
        else { return nil }
        let hex = Array(fields[2] == "-" ? "" : fields[2])
        let payload = stride(from: 0, to: hex.count, by: 2).compactMap { UInt8(String(hex[$0...$0 + 1]), radix: 16) }
        return RecordedMessage(message: .init(request: request, flags: flags, payload: payload), fdCount: fds)
    }
}
