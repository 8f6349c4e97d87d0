// linux.seccomp -> a BPF program, built in the parent with libseccomp (ks_seccomp_export), so the
// child only loads it with prctl(PR_SET_SECCOMP) right before execve.
import CGuest
import Glibc
import OCI
import SystemSupport

enum SeccompFilter {
    /// The BPF program bytes (struct sock_filter array) for `spec`.
    static func build(_ spec: OCISeccomp) throws(ContainerError) -> [UInt8] {
        let defaultErrno = spec.defaultErrnoRet ?? UInt32(EPERM)
        guard let defaultAction = Tables.seccompAction(spec.defaultAction, errno: defaultErrno) else {
            throw .invalidSpec(field: "linux.seccomp.defaultAction", reason: "unknown action \"\(spec.defaultAction)\"")
        }
        var archNames: [String] = []
        for (i, a) in (spec.architectures ?? []).enumerated() {
            guard let n = Tables.seccompArch(a) else {
                throw .invalidSpec(field: "linux.seccomp.architectures[\(i)]", reason: "unknown architecture \"\(a)\"")
            }
            archNames.append(n)
        }
        // One C rule per syscall name; remember which OCI entry it came from for errors.
        struct Rule { var name: String; var action: UInt32; var args: [ks_seccomp_arg]; var origin: Int }
        var rules: [Rule] = []
        for (i, s) in (spec.syscalls ?? []).enumerated() {
            let field = "linux.seccomp.syscalls[\(i)]"
            guard let action = Tables.seccompAction(s.action, errno: s.errnoRet ?? UInt32(EPERM)) else {
                throw .invalidSpec(field: "\(field).action", reason: "unknown action \"\(s.action)\"")
            }
            var args: [ks_seccomp_arg] = []
            for (j, a) in (s.args ?? []).enumerated() {
                guard let op = Tables.seccompOps[a.op] else {
                    throw .invalidSpec(field: "\(field).args[\(j)].op", reason: "unknown operator \"\(a.op)\"")
                }
                guard a.index < 6 else {
                    throw .invalidSpec(field: "\(field).args[\(j)].index", reason: "must be 0...5, got \(a.index)")
                }
                args.append(ks_seccomp_arg(index: a.index, op: op, value: a.value, value_two: a.valueTwo ?? 0))
            }
            for n in s.names { rules.append(Rule(name: n, action: action, args: args, origin: i)) }
        }
        let arena = CArena()
        let archs = arena.strings(archNames)
        let cRules = arena.array(rules.map { r in
            ks_seccomp_rule(name: arena.string(r.name), action: r.action, args: arena.array(r.args), arg_count: Int32(r.args.count))
        })
        var prog: UnsafeMutableRawPointer?
        var insns: Int32 = 0, badArch: Int32 = -1, badRule: Int32 = -1
        let rc = ks_seccomp_export(
            defaultAction, archs, Int32(archNames.count), cRules, Int32(rules.count), &prog, &insns, &badArch, &badRule)
        guard rc == 0, let prog else {
            if badArch >= 0 {
                throw .invalidSpec(field: "linux.seccomp.architectures[\(badArch)]", reason: Errno(-rc).message)
            }
            if badRule >= 0 {
                let r = rules[Int(badRule)]
                throw .invalidSpec(field: "linux.seccomp.syscalls[\(r.origin)]", reason: "\(r.name): \(Errno(-rc).message)")
            }
            throw .invalidSpec(field: "linux.seccomp", reason: "libseccomp: \(Errno(-rc).message)")
        }
        defer { free(prog) }
        return Array(UnsafeRawBufferPointer(start: prog, count: Int(insns) * 8))
    }
}
