import CSupport
import Glibc
import SystemSupport
import Testing

/// The shim's process-wide denylist (ks_process_confine.c, docs/security.md): each call is made in
/// a forked child that loaded it. Every call refused here succeeds, or fails otherwise, without it.
@Suite struct ProcessConfinementTests {
    // x86_64 system call numbers (Swift does not import glibc's SYS_ macros).
    static let SYS_ptrace = 101, SYS_personality = 135, SYS_settimeofday = 164, SYS_mount = 165
    static let SYS_init_module = 175, SYS_gettid = 186, SYS_keyctl = 250, SYS_unshare = 272
    static let SYS_perf_event_open = 298, SYS_setns = 308, SYS_bpf = 321, SYS_userfaultfd = 323
    static let SYS_io_uring_setup = 425, SYS_clone3 = 435
    // sched.h's flags (glibc declares them only under _GNU_SOURCE).
    static let CLONE_FS = 0x200, CLONE_NEWNS = 0x20000, CLONE_NEWUSER = 0x1000_0000, CLONE_NEWNET = 0x4000_0000

    enum Outcome: Equatable {
        case returned, refused, notImplemented, otherError, other(Int32)
    }

    static func probe(_ nr: Int, _ a0: Int = 0, _ a1: Int = 0, _ a2: Int = 0) -> Outcome {
        let status = ks_process_filter_probe(nr, a0, a1, a2)
        if status >= 0, status & 0x7f == 0 {
            switch (status >> 8) & 0xff {
            case 0: return .returned
            case 101: return .refused
            case 102: return .notImplemented
            case 103: return .otherError
            default: break
            }
        }
        return .other(status)
    }

    @Test func whatNoShimNeedsIsRefused() {
        #expect(Self.probe(Self.SYS_ptrace, 0) == .refused)  // PTRACE_TRACEME
        #expect(Self.probe(Self.SYS_init_module) == .refused)
        #expect(Self.probe(Self.SYS_settimeofday) == .refused)  // NULL, NULL: a no-op otherwise
        #expect(Self.probe(Self.SYS_keyctl, 0, -1) == .refused)  // KEYCTL_GET_KEYRING_ID
        // bpf: only what port forwarding uses (map create and update, program load, link create).
        #expect(Self.probe(Self.SYS_bpf, -1) == .refused)
        #expect(Self.probe(Self.SYS_bpf, 13) == .refused)  // BPF_PROG_GET_FD_BY_ID
        #expect(Self.probe(Self.SYS_bpf, 8) == .refused)  // BPF_PROG_ATTACH
        #expect(Self.probe(Self.SYS_bpf, 29) == .refused)  // BPF_LINK_UPDATE
        for cmd in [0, 2, 5, 28] {  // a NULL attribute: EFAULT/EINVAL, not the filter's EPERM
            #expect(Self.probe(Self.SYS_bpf, cmd) == .otherError, "bpf command \(cmd)")
        }
        #expect(Self.probe(Self.SYS_perf_event_open) == .refused)
        #expect(Self.probe(Self.SYS_userfaultfd, 0) == .refused)
        #expect(Self.probe(Self.SYS_io_uring_setup, 1) == .refused)
        #expect(Self.probe(Self.SYS_unshare, Self.CLONE_NEWUSER) == .refused)
        // clone3's flags are out of the filter's reach: ENOSYS sends glibc to clone.
        #expect(Self.probe(Self.SYS_clone3) == .notImplemented)
    }

    @Test func personalityMayOnlyBeAskedOrSetToLinux() {
        #expect(Self.probe(Self.SYS_personality, 0xffff_ffff) == .returned)
        #expect(Self.probe(Self.SYS_personality, 0) == .returned)
        #expect(Self.probe(Self.SYS_personality, 0x0008) == .returned)  // PER_LINUX32
        #expect(Self.probe(Self.SYS_personality, 0x0040000) == .refused)  // ADDR_NO_RANDOMIZE
        #expect(Self.probe(Self.SYS_personality, 0x0400000) == .refused)  // READ_IMPLIES_EXEC
        #expect(Self.probe(Self.SYS_personality, 0x8004_0000) == .refused)
        #expect(Self.probe(Self.SYS_personality, 0x7fff_ffff) == .refused)
    }

    @Test func whatTheShimDoesStillPasses() {
        #expect(Self.probe(Self.SYS_gettid) == .returned)
        #expect(Self.probe(Self.SYS_unshare, Self.CLONE_NEWNS | Self.CLONE_FS) == .returned)
        #expect(Self.probe(Self.SYS_mount) == .otherError)  // EFAULT: NULL arguments, but allowed
        #expect(Self.probe(Self.SYS_setns, -1, Self.CLONE_NEWNET) == .otherError)  // EBADF
        #expect(ks_process_filter_denied_count() > 40)
    }
}
