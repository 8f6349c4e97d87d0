import Glibc
import Testing

@testable import Hypervisor

@Suite struct BackendProbeTests {
    @Test func hostKeyIsStableAndFileNameSafe() {
        let key = BackendProbe.hostKey()
        #expect(key == BackendProbe.hostKey())
        #expect(!key.contains("/"))
        #expect(key.contains("kvmapi"))
    }

    @Test func realProbeFinishesAndIsCached() {
        let first = BackendProbe.verdict(refresh: true)
        #expect(!first.cached)
        #expect(!first.kvmReason.isEmpty)
        let second = BackendProbe.verdict()
        #expect(second.cached)
        #expect(second.kvmUserspace == first.kvmUserspace)
        #expect(second.qemuAvailable == first.qemuAvailable)
        print("probe: kvm \(first.kvmUserspace): \(first.kvmReason); auto -> \(String(describing: first.autoChoice))")
    }
}

@Suite struct BackendProbeCacheTests {
    @Test func aCachedVerdictReadsBackAsWritten() throws {
        let key = "test-\(getpid())-roundtrip"
        defer { for dir in BackendProbe.cacheDirectories { unlink(BackendProbe.cachePath(directory: dir, key: key)) } }
        let written = BackendVerdict(
            kvmUserspace: false, kvmReason: "ring-3 SYSCALL probe: no", qemuAvailable: true,
            qemuReason: "/usr/bin/qemu-system-x86_64 present", key: key, cached: false)
        BackendProbe.writeCache(written)
        var expected = written
        expected.cached = true
        #expect(BackendProbe.readCache(key: key) == expected)
        #expect(BackendProbe.readCache(key: key + "-absent") == nil)
    }
}
