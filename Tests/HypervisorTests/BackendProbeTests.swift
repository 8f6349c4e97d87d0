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
