// The engine takes what the CRI plugin writes: the OCI module's CRI fixture (a container's
// config.json captured from containerd), with its host paths replaced as the runtime's rewrite
// does (no pod sandbox to join here, no host bind mounts), runs with its capabilities, groups,
// masked and read-only paths.
import Glibc
import GuestContainers
import OCI
import Testing

@Suite("CRI spec in the engine") struct CRISpecTests {
    static func criContainer() throws -> OCISpec {
        var path = #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(2).joined(separator: "/")
        path += "/OCITests/Fixtures/cri-container.json"
        return try OCISpec.decode(Array(String(contentsOfFileAt: path).utf8))
    }

    @Test func aCRIContainerSpecRuns() throws {
        var spec = try Self.criContainer()
        spec.process?.args = ["sh", "-c", "id -G; cat /proc/kcore; echo ok"]
        spec.mounts = spec.mounts?.filter { !$0.isBind }
        var linux = try #require(spec.linux)
        linux.namespaces = linux.namespaces?.map { OCINamespace(type: $0.type) }
        linux.cgroupsPath = nil
        linux.resources = nil  // limits: LifecycleTests (cgroup v2 here may lack the memory controller)
        spec.linux = linux
        let r = try Fixture.run(spec, name: "cri")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "0\nok\n", "\(r.stdout)")
    }
}
