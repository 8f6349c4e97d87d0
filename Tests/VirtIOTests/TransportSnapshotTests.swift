import GuestMemory
import Testing
import VirtIO
import VirtIOTestSupport

/// The transport's state saved from a working device and restored into a fresh transport over a
/// fresh device: the driver's view is the same, and the device goes on from the same ring positions.
extension MmioTransportTests {
    @Test func aRestoredTransportCarriesOnWhereTheSavedOneWas() throws {
        initialise()
        device.popOnNotify = true
        _ = try queue0.add([.readable([1])])
        driver.write(.queueNotify, 0)
        #expect(device.queues[0].nextAvailable == 1)
        driver.write(.queueSelect, 1)
        let saved = try transport.savedState()

        let fresh = DummyDevice()
        fresh.popOnNotify = true
        let restored = MmioTransport(device: fresh, memory: memory, interruptLine: RecordingInterruptLine())
        try restored.restoreState(saved)
        let again = MmioDriver(transport: restored)
        #expect(again.status == driver.status)
        #expect(again.read(.queueReady) == 1)  // queue 1 selected, as when saved
        #expect(fresh.queues.map(\.size) == [8, 16])
        #expect(fresh.queues.map(\.descriptorTable) == device.queues.map(\.descriptorTable))
        #expect(fresh.queues.map(\.usedRing) == device.queues.map(\.usedRing))
        #expect(restored.isActivated && fresh.activations == 1)
        #expect(fresh.ackedFeatures == device.ackedFeatures)
        #expect(try restored.savedState() == saved)

        _ = try queue0.add([.readable([2])])
        again.write(.queueNotify, 0)
        #expect(fresh.notified == [0])
        #expect(fresh.queues[0].nextAvailable == 2)  // the second chain, not the first again
    }

    @Test func restoredStateIsCheckedLikeADriverWrite() throws {
        initialise()
        let saved = try transport.savedState()
        func restoring(_ bytes: [UInt8]) -> TransportStateError? {
            let restored = MmioTransport(device: DummyDevice(), memory: memory, interruptLine: RecordingInterruptLine())
            do {
                try restored.restoreState(bytes)
                return nil
            } catch {
                return error
            }
        }
        #expect(restoring(Array(saved.dropLast())) == .malformed("\(saved.count - 1) bytes"))
        var tooBig = saved
        let queueStart = saved.count - 2 * 33  // two queues of 33 bytes each end the state
        tooBig[queueStart] = 0x40  // queue 0 size 64 > 16
        #expect(restoring(tooBig) == .queue(index: 0, .invalidSize(size: 64, max: 16)))
        var outside = saved
        outside[queueStart + 3 + 7] = 0x10  // descriptor table far beyond guest memory
        if case .queue(0, _)? = restoring(outside) {} else { Issue.record("a ring outside guest memory was accepted") }
        #expect(throws: TransportStateError.notFresh) { try transport.restoreState(saved) }
    }
}

extension MmioTransportTests {
    /// A device model that does not say what its state is cannot be carried by a snapshot.
    @Test func aDeviceModelWithoutSnapshotSupportIsRefusedByType() throws {
        initialise()
        #expect(throws: TransportStateError.device(device.deviceType, DeviceStateError("this device model cannot be saved"))) {
            try transport.savedRecord()
        }
    }
}
