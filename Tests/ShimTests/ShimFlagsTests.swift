import Testing
@testable import Shim

@Suite struct ShimFlagsTests {
    @Test func parsesContainerdStartLine() throws {
        let flags = try ShimFlags(parsing: [
            "-namespace", "default", "-address", "/run/containerd/containerd.sock", "-publish-binary",
            "/usr/bin/containerd", "-id", "k1", "-debug", "start",
        ])
        #expect(flags.namespace == "default")
        #expect(flags.address == "/run/containerd/containerd.sock")
        #expect(flags.publishBinary == "/usr/bin/containerd")
        #expect(flags.id == "k1")
        #expect(flags.debug)
        #expect(flags.action == .start)
        try flags.validate()
    }

    @Test func parsesDeleteWithBundleAndGoSpellings() throws {
        let flags = try ShimFlags(parsing: ["--namespace=k8s.io", "-id=abc", "--bundle", "/b", "-debug=false", "delete"])
        #expect(flags.namespace == "k8s.io")
        #expect(flags.id == "abc")
        #expect(flags.bundle == "/b")
        #expect(!flags.debug)
        #expect(flags.action == .delete)
    }

    @Test func noActionMeansDaemon() throws {
        let flags = try ShimFlags(parsing: ["-namespace", "n", "-id", "x", "-address", "/a"])
        #expect(flags.action == .daemon)
        #expect(try ShimFlags(parsing: flags.daemonArguments) == flags)
    }

    @Test func valueMayStartWithDash() throws {
        #expect(try ShimFlags(parsing: ["-id", "-weird", "start"]).id == "-weird")
    }

    @Test func rejectsBadCommandLines() {
        #expect(throws: ShimFlagsError.unknownFlag("bogus")) { try ShimFlags(parsing: ["-bogus", "start"]) }
        #expect(throws: ShimFlagsError.missingValue("id")) { try ShimFlags(parsing: ["-id"]) }
        #expect(throws: ShimFlagsError.unknownAction("run")) { try ShimFlags(parsing: ["-id", "x", "run"]) }
        #expect(throws: ShimFlagsError.unexpectedArgument("extra")) { try ShimFlags(parsing: ["start", "extra"]) }
        #expect(throws: ShimFlagsError.badBool(flag: "debug", value: "maybe")) { try ShimFlags(parsing: ["-debug=maybe"]) }
        #expect(throws: ShimFlagsError.badSyntax("---x")) { try ShimFlags(parsing: ["---x"]) }
        #expect(throws: ShimFlagsError.missingFlag("namespace")) { try ShimFlags(parsing: ["-id", "x", "start"]).validate() }
    }

    @Test func flagsStopAtDoubleDash() throws {
        #expect(try ShimFlags(parsing: ["-id", "x", "--", "delete"]).action == .delete)
    }
}

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hexDigest("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hexDigest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hexDigest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            SHA256.hexDigest(String(repeating: "a", count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func containerdSocketVector() {
        let socket = ShimSocket(containerdAddress: "/run/containerd/containerd.sock", namespace: "default", groupID: "test1")
        #expect(socket.path == "/run/containerd/s/05380991aeb734527f768875a3abe60fc483550242e2fc78fd0aecdbbe4576f1")
        #expect(socket.address == "unix://" + socket.path)
        #expect(socket.path.utf8.count < 108)
    }
}
