// containerd's config.json through the model and back: nothing a runtime acts on is lost, numbers
// keep their range (-1 limits, the largest uint64), unknown keys are ignored, errors name the field.
//
// Fixtures, captured from bundles of containerd 1.6.20 while the end-to-end tests ran:
// ctr-run.json is `ctr run busybox k1 echo hi` (ContainerdE2ETests); cri-sandbox.json and
// cri-container.json come from the CRI suite with runc (CRITests): the "oom" pod's sandbox and its "hog" container, with a memory limit, the
// sandbox's namespace paths, the /etc and /dev/shm bind mounts and CRI's annotations.
// every-field.json sets every field of the model, a RuntimeDefault-like seccomp profile included.

import Foundation
import OCI
import Testing

@Suite("OCI spec round trip") struct RoundTripTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func fixture(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: fixtures.appendingPathComponent(name)))
    }

    @Test(arguments: ["ctr-run.json", "cri-sandbox.json", "cri-container.json", "every-field.json"])
    func decodeEncodeKeepsTheWholeDocument(_ name: String) throws {
        let original = try Self.fixture(name)
        let spec = try OCISpec.decode(original)
        let encoded = try spec.encoded()
        #expect(try JSONValue.parse(encoded) == JSONValue.parse(original))
        #expect(try OCISpec.decode(encoded) == spec)
    }

    @Test func ctrRunDecodesIntoWhatTheRuntimeReads() throws {
        let spec = try OCISpec.decode(Self.fixture("ctr-run.json"))
        #expect(spec.process?.args == ["echo", "hi"] && spec.process?.cwd == "/")
        #expect(spec.process?.rlimits == [OCIRlimit(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024)])
        #expect(spec.annotations == nil && spec.linux?.cgroupsPath == "/default/k1")
        #expect(spec.linux?.namespaces?.allSatisfy { $0.joinPath == nil } == true)
        #expect(spec.linux?.resources?.devices?.first == OCIResources.DeviceRule(allow: false, access: "rwm"))
        #expect(spec.linux?.resources?.devices?.contains(OCIResources.DeviceRule(allow: true, type: "c", major: 136, access: "rwm")) == true)
    }

    @Test func numbersKeepTheirGoTypes() throws {
        let spec = try OCISpec.decode(Self.fixture("every-field.json"))
        let resources = try #require(spec.linux?.resources)
        #expect(resources.memory?.limit == -1 && resources.memory?.swap == -1)
        #expect(resources.cpu?.quota == -1 && resources.pids?.limit == -1)
        #expect(resources.blockIO?.throttleWriteBpsDevice?.first?.rate == UInt64.max)
        #expect(resources.devices?.last == OCIResources.DeviceRule(allow: true, type: "b", major: -1, minor: -1, access: "m"))
        #expect(spec.process?.rlimits?.first?.hard == UInt64.max)
        #expect(spec.linux?.seccomp?.syscalls?.last?.args?.first?.valueTwo == UInt64.max)
        #expect(spec.linux?.timeOffsets?["monotonic"] == OCITimeOffset(secs: -172800, nanosecs: 0))
        #expect(spec.process?.oomScoreAdj == 1000 && spec.process?.user.umask == 18)
    }

    @Test func criDocumentsDecodeIntoWhatTheRuntimeReads() throws {
        let sandbox = try OCISpec.decode(Self.fixture("cri-sandbox.json"))
        #expect(sandbox.annotations?["io.kubernetes.cri.container-type"] == "sandbox")
        #expect(sandbox.root == OCIRoot(path: "rootfs", readonly: true) && sandbox.hostname == "oom")
        #expect(sandbox.linux?.namespaces?.last?.joinPath == "/var/run/netns/cni-c19d15fd-231d-dd66-2c4b-5a014d42d1df")
        #expect(sandbox.linux?.resources?.cpu == OCIResources.CPU(shares: 2))
        let container = try OCISpec.decode(Self.fixture("cri-container.json"))
        #expect(container.process?.user == OCIUser(uid: 0, gid: 0, additionalGids: [0]))
        #expect(container.process?.oomScoreAdj == 0)
        #expect(container.mounts?.first { $0.destination == "/dev/shm" }?.isBind == true)
        #expect(container.mounts?.first { $0.destination == "/proc" }?.isBind == false)
        #expect(container.linux?.resources?.memory == OCIResources.Memory(limit: 33_554_432, swap: 33_554_432))
        #expect(container.linux?.resources?.cpu == OCIResources.CPU())
        #expect(container.linux?.namespaces?.map(\.joinPath) == [
            "/proc/2406/ns/pid", "/proc/2406/ns/ipc", "/proc/2406/ns/uts", nil, "/proc/2406/ns/net",
        ])
    }

    @Test func seccompRulesKeepTheirArguments() throws {
        let spec = try OCISpec.decode(Self.fixture("every-field.json"))
        let seccomp = try #require(spec.linux?.seccomp)
        let clone = seccomp.syscalls?.first { $0.names == ["clone"] }
        #expect(clone?.args == [OCISeccomp.Arg(index: 0, value: 2_114_060_288, op: "SCMP_CMP_MASKED_EQ")])
        #expect(seccomp.syscalls?.first { $0.names == ["clone3"] }?.errnoRet == 38)
        #expect(seccomp.flags == ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
        #expect(seccomp.listenerPath == "/run/seccomp-agent.socket" && seccomp.defaultErrnoRet == 1)
    }

    @Test func unknownKeysAreIgnored() throws {
        let json = """
            {"ociVersion":"1.2.0","process":{"user":{"uid":0,"gid":0,"username":"x"},"cwd":"/","args":["sh"],
             "ioPriority":{"class":"IOPRIO_CLASS_RT","priority":1}},
             "windows":{"layerFolders":["C:\\\\layers"]},"linux":{"namespaces":[{"type":"pid"}],"memoryPolicy":{}}}
            """
        let spec = try OCISpec.decode(Array(json.utf8))
        #expect(spec.process?.args == ["sh"] && spec.linux?.namespaces == [OCINamespace(type: "pid")])
        let encoded = String(decoding: try spec.encoded(), as: UTF8.self)
        #expect(encoded == #"{"linux":{"namespaces":[{"type":"pid"}]},"ociVersion":"1.2.0","process":{"args":["sh"],"cwd":"/","user":{"gid":0,"uid":0}}}"#)
    }

    @Test func errorsNameTheField() {
        func field(_ json: String) -> String? {
            do {
                _ = try OCISpec.decode(Array(json.utf8))
                return nil
            } catch {
                return error.field
            }
        }
        #expect(field(#"{"process":{"user":{"uid":"root","gid":0},"args":["sh"],"cwd":"/"}}"#) == "process.user.uid")
        #expect(field(#"{"process":{"user":{"uid":0,"gid":0},"args":["sh"]}}"#) == "process.cwd")
        #expect(field(#"{"mounts":[{"destination":"/a"},{"type":"tmpfs"}]}"#) == "mounts[1].destination")
        // Numbers outside the field's type are refused, but Foundation's decoder names no field.
        #expect(field(#"{"linux":{"resources":{"memory":{"limit":1.5}}}}"#) == "(document)")
        #expect(field(#"{"linux":{"resources":{"cpu":{"shares":-2}}}}"#) == "(document)")
        #expect(field(#"{"linux":{"resources":{"cpu":{"shares":18446744073709551616}}}}"#) == "(document)")
        #expect(field(#"{"linux":{"timeOffsets":{"boottime":{"secs":"1"}}}}"#) == "linux.timeOffsets.boottime.secs")
        #expect(field("{not json") == "(document)")
        let missing = OCIDecodingError(field: "cwd", reason: "required field is missing")
        #expect(throws: missing) { _ = try OCIProcess.decode(Array(#"{"args":["sh"],"user":{"uid":0,"gid":0}}"#.utf8)) }
    }

    @Test func processAndResourcesDecodeOnTheirOwn() throws {
        let process = try OCIProcess.decode(Array(#"{"user":{"uid":1,"gid":2},"args":["ls"],"cwd":"/tmp","terminal":true}"#.utf8))
        #expect(process == OCIProcess(terminal: true, user: OCIUser(uid: 1, gid: 2), args: ["ls"], cwd: "/tmp"))
        let resources = try OCIResources.decode(Array(#"{"memory":{"limit":-1},"pids":{"limit":64}}"#.utf8))
        #expect(resources == OCIResources(memory: .init(limit: -1), pids: .init(limit: 64)))
        #expect(try OCIResources.decode(resources.encoded()) == resources)
    }
}

/// Any JSON document, to compare two of them whatever their key order and spacing.
enum JSONValue: Equatable, Decodable {
    case null, bool(Bool), int(Int64), uint(UInt64), double(Double), string(String)
    case array([JSONValue]), object([String: JSONValue])

    static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            var values: [JSONValue] = []
            while !array.isAtEnd { values.append(try array.decode(JSONValue.self)) }
            self = .array(values)
            return
        }
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var values: [String: JSONValue] = [:]
            for key in object.allKeys { values[key.stringValue] = try object.decode(JSONValue.self, forKey: key) }
            self = .object(values)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() {
            self = .null
        } else if let value = try? single.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? single.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? single.decode(UInt64.self) {
            self = .uint(value)
        } else if let value = try? single.decode(Double.self) {
            self = .double(value)
        } else {
            self = .string(try single.decode(String.self))
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
