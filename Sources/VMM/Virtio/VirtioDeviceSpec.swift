import Devices
import SystemSupport
import VirtIO

/// One virtio device for the VM to host on a virtio-mmio slot, with how its backend asks for
/// work. Generic: any `VirtioDevice` (vsock, rng, fs...) fits; a device whose host side produces
/// work on its own (vsock's muxer) supplies `attachBackend` and `backendWork`.
public struct VirtioDeviceSpec: @unchecked Sendable {
    // SAFETY (Sendable): the device is handed over when the VM is built; from then on it is
    // touched only under its slot's lock (vCPU register accesses and the device event loop).
    public let device: any VirtioDevice
    /// Called once, when the VM is built, with a `wake` the backend calls from any thread when
    /// it has work for the device; the event loop then runs `backendWork` under the slot's lock.
    public let attachBackend: ((@escaping @Sendable () -> Void) -> Void)?
    /// The device's host-side work (vsock: move the muxer's packets into RX buffers).
    public let backendWork: (() -> Void)?
    /// A descriptor the event loop polls (edge-triggered) for the backend: when it becomes
    /// readable, `backendWork` runs (net: a tap with frames for the guest).
    public let backendDescriptor: FileDescriptor?

    public init(
        device: any VirtioDevice, attachBackend: ((@escaping @Sendable () -> Void) -> Void)? = nil,
        backendWork: (() -> Void)? = nil, backendDescriptor: FileDescriptor? = nil
    ) {
        self.device = device
        self.attachBackend = attachBackend
        self.backendWork = backendWork
        self.backendDescriptor = backendDescriptor
    }

    /// virtio-vsock with `muxer` as its backend (the muxer wakes the event loop).
    public static func vsock(_ device: VsockDevice, muxer: VsockMuxer) -> VirtioDeviceSpec {
        VirtioDeviceSpec(
            device: device, attachBackend: { wake in muxer.setWakeHandler(wake) },
            backendWork: { device.processBackend() })
    }

    /// virtio-net: frames from the backend are polled on its descriptor. Edge-triggered, so
    /// frames left in the backend while the guest has no RX buffers do not spin the loop; the
    /// guest's next RX kick picks them up.
    public static func net(_ device: NetDevice) -> VirtioDeviceSpec {
        VirtioDeviceSpec(
            device: device, backendWork: { device.processBackend() },
            backendDescriptor: device.backend.readinessDescriptor)
    }

    /// virtio-balloon with free page reporting: all its work comes from queue notifications.
    public static func balloon(_ device: BalloonDevice = BalloonDevice()) -> VirtioDeviceSpec {
        VirtioDeviceSpec(device: device)
    }

    /// virtio-rng: all its work comes from queue notifications.
    public static func rng(_ device: RngDevice = RngDevice()) -> VirtioDeviceSpec {
        VirtioDeviceSpec(device: device)
    }

    /// virtio-blk (read-only): all its work comes from queue notifications; the reads (pread on
    /// the image) run on the device thread, under its seccomp allowlist.
    public static func blk(_ device: BlkDevice) -> VirtioDeviceSpec {
        VirtioDeviceSpec(device: device)
    }
}
