// Decodes a representative OCI spec once, on a thread of its own, right after the agent starts
// listening. The first decode in a process pays for the Swift runtime's metadata and conformance
// lookups of every Codable type in the spec; under TCG that was about 50 ms of the first
// CreateContainer (docs/performance.md, "Where a warm start's time goes"). On a cold boot it runs
// at the lowest priority while the shim creates the sandbox; a warm sandbox's throwaway container
// (Runtime's GuestWarmUp) warms this and the rest of the container path before any pod comes.
import Glibc
import OCI
import SystemSupport

enum SpecPrewarm {
    /// Starts the decode in the background; a failure is logged at debug and changes nothing else.
    static func start(log: AgentLog) {
        do {
            try WorkerThread.detach(name: "spec-prewarm") {
                // Nice 19 for this thread only (Linux's nice is per thread): on a cold boot the
                // shim's first calls arrive while it runs, and they go first on the one vCPU.
                _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
                let clock = ContinuousClock()
                let started = clock.now
                do {
                    _ = try OCISpec.decode(Array(sample.utf8))
                    log.debug("spec decoder warmed in \(started.duration(to: clock.now))")
                } catch {
                    log.debug("spec decoder warm-up: \(error)")
                }
            }
        } catch {
            log.debug("spec decoder warm-up: no thread: \(error)")
        }
    }

    /// The shape containerd and CRI give a container: every section a real spec carries.
    static let sample = """
        {"ociVersion":"1.1.0",
         "process":{"terminal":false,"user":{"uid":0,"gid":0,"additionalGids":[0,10]},
          "args":["sh","-c","true"],"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","HOSTNAME=x"],
          "cwd":"/","capabilities":{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_CHOWN","CAP_KILL"],
          "permitted":["CAP_CHOWN","CAP_KILL"],"inheritable":[],"ambient":[]},
          "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true,
          "apparmorProfile":"","oomScoreAdj":0,"consoleSize":{"height":24,"width":80}},
         "root":{"path":"/run/kata-containers/shared/containers/x/rootfs","readonly":false},
         "hostname":"x",
         "mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]},
          {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
          {"destination":"/etc/hosts","type":"bind","source":"/run/kata-containers/shared/containers/x-hosts","options":["rbind","rprivate","ro"]}],
         "annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-id":"x"},
         "linux":{"uidMappings":[],"gidMappings":[],"sysctl":{"net.ipv4.ip_unprivileged_port_start":"0"},
          "resources":{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}],
           "memory":{"limit":134217728,"swap":134217728},"cpu":{"shares":1024,"quota":100000,"period":100000,"cpus":"0","mems":"0"},
           "pids":{"limit":1024},"hugepageLimits":[],"blockIO":{"weight":100}},
          "cgroupsPath":"/kubepods/besteffort/podx/x",
          "namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"network","path":"/proc/1/ns/net"}],
          "devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":438,"uid":0,"gid":0}],
          "seccomp":{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
           "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
            {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]},
          "maskedPaths":["/proc/acpi","/proc/kcore","/sys/firmware"],"readonlyPaths":["/proc/bus","/proc/sys"]}}
        """
}
