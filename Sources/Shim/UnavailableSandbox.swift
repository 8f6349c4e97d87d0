// The production sandbox of this build. There is no VM backend yet (the in-process KVM VMM and the
// QEMU backend arrive with the Runtime module), so creating a container fails with an error that
// says exactly that; containerd shows it to the user (`ctr run` prints it) and cleans up.

import OCI

/// A sandbox failure.
public enum SandboxError: Error, Equatable, CustomStringConvertible {
    case noHypervisorBackend(containerID: String)
    case noSuchContainer(String)

    public var description: String {
        switch self {
        case .noHypervisorBackend(let id):
            "kata-swift: no hypervisor backend available yet: cannot create container \(id): this build has no VM "
                + "sandbox (neither the in-process KVM VMM nor the QEMU backend is wired into the shim)"
        case .noSuchContainer(let id): "kata-swift: sandbox has no container \(id)"
        }
    }
}

/// The sandbox used when no hypervisor backend exists: every container creation fails clearly.
public struct UnavailableSandbox: Sandbox {
    public init() {}

    public func createContainer(_ config: ContainerConfig) async throws -> UInt32 {
        throw SandboxError.noHypervisorBackend(containerID: config.id)
    }

    public func addProcess(containerID: String, execID: String, spec: OCIProcess, stdio: ProcessStdio) async throws {
        throw SandboxError.noSuchContainer(containerID)
    }

    public func startProcess(containerID: String, execID: String?) async throws -> UInt32 {
        throw SandboxError.noSuchContainer(containerID)
    }

    public func signalProcess(containerID: String, execID: String?, signal: UInt32, all: Bool) async throws {
        throw SandboxError.noSuchContainer(containerID)
    }

    public func waitProcess(containerID: String, execID: String?) async throws -> UInt32 {
        throw SandboxError.noSuchContainer(containerID)
    }

    public func resizePty(containerID: String, execID: String?, width: UInt32, height: UInt32) async throws {
        throw SandboxError.noSuchContainer(containerID)
    }

    public func closeStdin(containerID: String, execID: String?) async throws {
        throw SandboxError.noSuchContainer(containerID)
    }

    public func pids(containerID: String) async throws -> [UInt32] { throw SandboxError.noSuchContainer(containerID) }

    public func stats(containerID: String) async throws -> EncodedMetrics {
        throw SandboxError.noSuchContainer(containerID)
    }

    public func pause(containerID: String) async throws { throw SandboxError.noSuchContainer(containerID) }

    public func resume(containerID: String) async throws { throw SandboxError.noSuchContainer(containerID) }

    public func update(containerID: String, resources: [UInt8], annotations: [String: String]) async throws {
        throw SandboxError.noSuchContainer(containerID)
    }

    public func removeProcess(containerID: String, execID: String) async throws {
        throw SandboxError.noSuchContainer(containerID)
    }

    public func removeContainer(containerID: String) async throws { throw SandboxError.noSuchContainer(containerID) }

    public func shutdown() async {}
}
