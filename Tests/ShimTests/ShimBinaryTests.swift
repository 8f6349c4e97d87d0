// The real binary, driven as containerd drives it: start/delete protocol and every task method
// over a real Unix socket, against the scripted test shim (the same ShimMain, no VM).

import ContainerdAPI
import Foundation
import OCI
import SwiftProtobuf
import Testing
import TTRPC
@testable import Shim

@Suite(.serialized) struct ShimBinaryTests {
    @Test func shippedShimCarriesNoScriptedSandbox() throws {
        // The test backend lives only in containerd-shim-kata-scripted-v2: the shipped binary has
        // neither its code (symbols) nor the environment variable that once selected it.
        let scripted = try shimBinary()
        let shipped = URL(fileURLWithPath: scripted).deletingLastPathComponent()
            .appendingPathComponent("containerd-shim-kata-v2").path
        let shippedBytes = try Data(contentsOf: URL(fileURLWithPath: shipped))
        let scriptedBytes = try Data(contentsOf: URL(fileURLWithPath: scripted))
        #expect(scriptedBytes.range(of: Data("ScriptedSandbox".utf8)) != nil)  // the probe finds it where it is
        #expect(shippedBytes.range(of: Data("ScriptedSandbox".utf8)) == nil)
        #expect(shippedBytes.range(of: Data("KATA_SWIFT_TEST_SANDBOX".utf8)) == nil)
    }

    @Test func startPrintsOnlyTheAddressAndDaemonizes() async throws {
        try await withShim("start") { shim in
            let bundle = try shim.bundle("t1")
            let clock = ContinuousClock()
            let began = clock.now
            let (status, output) = try shim.start("t1", bundle: bundle)
            let elapsed = clock.now - began
            let expected = ShimSocket(containerdAddress: shim.containerdAddress, namespace: "testns", groupID: "t1")
            #expect(status == 0)
            #expect(output == expected.address)  // nothing else on stdout or stderr
            shim.address = output
            #expect(try bundle.readAddress() == expected.address)
            #expect(elapsed < .seconds(5), "start took \(elapsed)")  // EOF came: the daemon holds no end of the pipe
            let pid = try #require(shim.daemonPID())
            #expect(getpgid(pid) == pid)  // its own process group
            for fd in 0...1 {
                #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)") == "/dev/null")
            }
            // The daemon logs to the bundle's log FIFO once it is up.
            #expect(await eventually { shim.log("t1").contains("serving \(expected.address)") })
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/2") == bundle.logPath)
            var info = stat()
            #expect(stat(expected.path, &info) == 0 && info.st_mode & 0o777 == 0o600)
            // SIGTERM ends it cleanly and removes the socket.
            kill(pid, SIGTERM)
            #expect(await eventually { shim.daemonPID() == nil })
            #expect(!FileManager.default.fileExists(atPath: expected.path))
            // The log copier drains the FIFO on its own thread: the last line may land after the exit.
            #expect(await eventually { shim.log("t1").contains("ending: signal 15") })
        }
    }

    @Test func containerOfAPodJoinsTheSandboxShim() async throws {
        try await withShim("pod") { shim in
            let sandbox = try shim.bundle("pod1", annotations: [
                OCISpec.containerTypeAnnotation: "sandbox", OCISpec.sandboxIDAnnotation: "pod1",
            ])
            let member = try shim.bundle("ctr1", annotations: [
                OCISpec.containerTypeAnnotation: "container", OCISpec.sandboxIDAnnotation: "pod1",
            ])
            // A container of a pod whose shim is not running is refused, clearly.
            let early = try shim.start("ctr1", bundle: member)
            #expect(early.status != 0 && early.output.contains("no shim is serving sandbox pod1"))
            let first = try shim.start("pod1", bundle: sandbox)
            shim.address = first.output
            let pid = try #require(shim.daemonPID())
            let second = try shim.start("ctr1", bundle: member)
            #expect(second.status == 0 && second.output == first.output)
            #expect(try member.readAddress() == first.output)  // every bundle gets its address
            #expect(shim.daemonPID() == pid)  // no second daemon
            // start again for the same group (containerd retry): same shim, same address.
            #expect(try shim.start("pod1", bundle: sandbox).output == first.output)
            kill(pid, SIGTERM)
            #expect(await eventually { shim.daemonPID() == nil })
        }
    }

    @Test func deleteIsFastIdempotentAndSparesLiveShims() async throws {
        try await withShim("delete") { shim in
            let bundle = try shim.bundle("d1")
            #expect(mount("tmpfs", bundle.rootfsPath, "tmpfs", 0, nil) == 0)
            // A socket left by a dead shim: bound, then its listener closed.
            let stale = ShimSocket(containerdAddress: shim.containerdAddress, namespace: "testns", groupID: "d1")
            close(try stale.listen())
            for round in 1...2 {
                let clock = ContinuousClock()
                let began = clock.now
                let result = try runShim(shim.flags("d1", "delete", bundle: bundle.path), in: bundle.path,
                                         environment: shim.environment, separateStderr: true)
                #expect(clock.now - began < .seconds(2))
                #expect(result.status == 0)
                #expect(result.stderr.isEmpty, "round \(round): \(String(decoding: result.stderr, as: UTF8.self))")
                let response = try Containerd_Task_V2_DeleteResponse(serializedBytes: Array(result.output))
                #expect(response.exitStatus == 137)
                #expect(abs(response.exitedAt.date.timeIntervalSinceNow) < 30)
                #expect(!RootfsMounts.isMountPoint(bundle.rootfsPath))
                #expect(!FileManager.default.fileExists(atPath: stale.path))
            }
            // A live shim's socket is left alone.
            let live = try shim.bundle("d2")
            let started = try shim.start("d2", bundle: live)
            shim.address = started.output
            _ = try runShim(shim.flags("d2", "delete", bundle: live.path), in: live.path, environment: shim.environment)
            #expect(try ShimSocket(address: started.output).canConnect())
            if let pid = shim.daemonPID() { kill(pid, SIGTERM) }
            #expect(await eventually { shim.daemonPID() == nil })
        }
    }

    @Test func badCommandLinesFailWithoutAnAddress() async throws {
        try await withShim("badflags") { shim in
            let bundle = try shim.bundle("x1")
            let unknown = try runShim(["-namespace", "n", "-bogus", "start"], in: bundle.path, environment: shim.environment)
            #expect(unknown.status == 2)
            #expect(String(decoding: unknown.output, as: UTF8.self).contains("flag provided but not defined: -bogus"))
            try FileManager.default.removeItem(atPath: bundle.specPath)
            let noSpec = try shim.start("x1", bundle: bundle)
            #expect(noSpec.status == 1 && noSpec.output.contains("config.json"))
            #expect(shim.daemonPID() == nil)
            #expect(!FileManager.default.fileExists(atPath: ShimSocket(
                containerdAddress: shim.containerdAddress, namespace: "testns", groupID: "x1").path))
        }
    }
}
