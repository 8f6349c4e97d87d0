import OCI
import Testing

@testable import Agent

@Suite struct SpecPrewarmTests {
    /// The warm-up is worth something only if its sample reaches every section a real spec has:
    /// a decode that stopped early (a field renamed in OCI) would leave those types cold.
    @Test func sampleDecodesEverySection() throws {
        let spec = try OCISpec.decode(Array(SpecPrewarm.sample.utf8))
        let process = try #require(spec.process)
        #expect(process.capabilities?.bounding == ["CAP_CHOWN", "CAP_KILL"])
        #expect(process.rlimits?.count == 1)
        #expect(spec.mounts?.count == 3)
        let linux = try #require(spec.linux)
        #expect(linux.resources?.memory?.limit == 134_217_728)
        #expect(linux.resources?.devices?.count == 2)
        #expect(linux.namespaces?.count == 5)
        #expect(linux.seccomp?.syscalls?.last?.args?.first?.op == "SCMP_CMP_EQ")
        #expect(linux.maskedPaths?.count == 3)
    }
}
