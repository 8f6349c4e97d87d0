// The engine's view of the OCI model (the OCI module): containerd's JSON shape decodes into what
// the engine reads, unknown fields are ignored, errors name the field.
import GuestContainers
import OCI
import Testing

@Suite("OCI spec") struct SpecTests {
    @Test func decodesContainerdShape() throws {
        let json = """
            {"ociVersion":"1.0.2-dev","process":{"user":{"uid":0,"gid":0,"additionalGids":[10]},
             "args":["sh"],"env":["PATH=/bin"],"cwd":"/","terminal":true,
             "capabilities":{"bounding":["CAP_CHOWN"],"effective":["CAP_CHOWN"],"permitted":["CAP_CHOWN"]},
             "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"noNewPrivileges":true,
             "apparmorProfile":"ignored"},
             "root":{"path":"rootfs","readonly":true},"hostname":"h",
             "mounts":[{"destination":"/proc","type":"proc","source":"proc"}],
             "linux":{"namespaces":[{"type":"pid"},{"type":"mount"}],"cgroupsPath":"/k8s/abc",
              "resources":{"memory":{"limit":1048576},"cpu":{"shares":512,"quota":50000,"period":100000},"pids":{"limit":64},
                           "devices":[{"allow":false,"access":"rwm"}]},
              "seccomp":{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
                         "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]},
              "maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"],"sysctl":{"a":"b"}},
             "annotations":{"io.kubernetes.cri.container-type":"sandbox"}}
            """
        let spec = try OCISpec.decode(Array(json.utf8))
        #expect(spec.process?.user.additionalGids == [10])
        #expect(spec.process?.terminal == true)
        #expect(spec.root == OCIRoot(path: "rootfs", readonly: true))
        #expect(spec.linux?.resources?.cpu?.quota == 50000)
        #expect(spec.linux?.resources?.pids?.limit == 64)
        #expect(spec.linux?.seccomp?.syscalls?.first?.names == ["read"])
        #expect(spec.linux?.cgroupsPath == "/k8s/abc")
    }

    @Test func wrongTypeNamesTheField() {
        let json = #"{"process":{"user":{"uid":"root","gid":0},"args":["sh"],"cwd":"/"}}"#
        #expect { _ = try OCISpec.decode(Array(json.utf8)) } throws: { e in
            (e as? OCIDecodingError)?.field == "process.user.uid"
        }
    }

    @Test func missingFieldNamesTheField() {
        let json = #"{"args":["sh"],"user":{"uid":0,"gid":0}}"#
        #expect { _ = try OCIProcess.decode(Array(json.utf8)) } throws: { e in
            "\(e)" == "invalid OCI spec: cwd: required field is missing"
        }
    }

    @Test func notJSONIsAnError() {
        #expect(throws: OCIDecodingError.self) { _ = try OCISpec.decode(Array("{not json".utf8)) }
    }
}
