// The guest images tests boot (tests only): our kernel, the agent initramfs, and the agent
// initramfs with a busybox rootfs at /test-rootfs. `make test` passes them in the environment;
// a test run by hand builds them with the guest-image scripts (cached kernel, incremental agent).

#if canImport(Glibc)
import Glibc
#endif

public struct GuestImagePaths: Sendable {
    public var kernel: String
    public var initrd: String
}

public struct GuestImageError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

public enum GuestImages {
    /// $KATA_GUEST_KERNEL and $KATA_AGENT_INITRD, else built.
    public static func agent() throws -> GuestImagePaths {
        try paths(initrdVariable: "KATA_AGENT_INITRD", script: "build-agent-initramfs.sh",
                  fallback: "/tmp/kata-swift-agent-channel-initrd.cpio", what: "agent initramfs")
    }

    /// $KATA_GUEST_KERNEL and $KATA_AGENT_TEST_INITRD (agent + /test-rootfs), else built.
    public static func agentWithTestRootfs() throws -> GuestImagePaths {
        try paths(initrdVariable: "KATA_AGENT_TEST_INITRD", script: "build-test-initramfs.sh",
                  fallback: "/tmp/kata-swift-agent-test-initrd.cpio", what: "test initramfs")
    }

    private static func paths(initrdVariable: String, script: String, fallback: String, what: String) throws
        -> GuestImagePaths
    {
        let root = repoRoot()
        let kernel = try env("KATA_GUEST_KERNEL") ?? (shell("\(root)/guest-image/build-kernel.sh 2>/dev/null | tail -1") + "/vmlinux")
        var initrd = env(initrdVariable) ?? ""
        if initrd.isEmpty || access(initrd, R_OK) != 0 {
            initrd = fallback
            _ = try shell("\(root)/guest-image/\(script) \(initrd) >/dev/null 2>&1 && echo ok")
        }
        guard access(kernel, R_OK) == 0, access(initrd, R_OK) == 0 else {
            throw GuestImageError(description: "guest kernel (\(kernel)) or \(what) (\(initrd)) missing")
        }
        return GuestImagePaths(kernel: kernel, initrd: initrd)
    }

    /// A non-empty environment variable.
    public static func env(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let s = String(cString: value)
        return s.isEmpty ? nil : s
    }

    /// The checkout this file was compiled from.
    public static func repoRoot() -> String {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Sources/GuestImageTestSupport/<file>
        return parts.joined(separator: "/")
    }

    /// Runs `command` with /bin/sh; its stdout without trailing blanks. Fails on a non-zero exit.
    public static func shell(_ command: String) throws -> String {
        guard let pipe = popen(command, "r") else { throw GuestImageError(description: "cannot run \(command)") }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, pipe)
            if n == 0 { break }
            output += buffer[..<n]
        }
        guard pclose(pipe) == 0 else { throw GuestImageError(description: "\(command) failed") }
        var s = String(decoding: output, as: UTF8.self)
        while s.last == "\n" || s.last == " " { s.removeLast() }
        return s
    }
}
