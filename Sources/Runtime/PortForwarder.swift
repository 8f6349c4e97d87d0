// CRI port forwarding into the VM (docs/kubernetes.md, "Port forwarding"). containerd serves
// `kubectl port-forward` by dialling localhost:PORT inside the pod's network namespace on the
// host, where nothing of the pod listens: its network is in the VM. The shim puts one listener
// on 127.0.0.1 in that namespace and a BPF sk_lookup program (ks_portfwd) that hands it every
// TCP connection to 127.0.0.1, whatever the port; the accepted socket still names the port the
// client dialled. Each connection is relayed over vsock to the agent (PortForwardWire), which
// dials that port on the guest's loopback. A port nothing listens on in the guest is answered
// with a reset, so the client sees what it would see with runc.
//
// Threads: one accept thread, and one relay thread per connection, all blocked in poll(2);
// the vsock connect runs as a task. stop() ends them all and detaches the program.

import AgentAPI
import CNet
import Dispatch
import Logging
import Netlink
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

final class PortForwarder: Sendable {
    typealias Connect = @Sendable () async throws -> FileDescriptor

    private struct Handles: Sendable {
        var listener: FileDescriptor
        var link: FileDescriptor
    }

    static let handshakeTimeoutMilliseconds: Int32 = 10_000

    let namespacePath: String
    private let handles: Mutex<Handles?> = Mutex(nil)
    /// Kept for the forwarder's life: its stop pipe, which the relays poll too, must outlive them.
    private let loop: Mutex<AcceptLoop?> = Mutex(nil)
    private let relays = DispatchGroup()
    private let connect: Connect
    private let logger: Logger

    /// Listens in the namespace at `namespacePath` and attaches the steering program.
    /// `connect` opens a stream to the agent's port-forward service.
    init(namespacePath: String, logger: Logger, connect: @escaping Connect) throws(RuntimeError) {
        self.namespacePath = namespacePath
        self.logger = logger
        self.connect = connect
        let namespace: FileDescriptor
        do {
            namespace = try FileDescriptor.open(namespacePath, O_RDONLY)
        } catch {
            throw .system(operation: "open network namespace \(namespacePath)", errno: error.rawValue)
        }
        // Inside the pod's namespace on a thread of its own (NetworkNamespace): the socket stays there.
        let listenFD: Int32
        do {
            listenFD = try NetworkNamespace.run(path: namespacePath) { ks_portfwd_listen_loopback() }
        } catch {
            throw .network(operation: "enter \(namespacePath) to listen on 127.0.0.1", reason: "\(error)")
        }
        guard listenFD >= 0 else { throw .system(operation: "listen on 127.0.0.1 in \(namespacePath)", errno: -listenFD) }
        let listener = FileDescriptor(owning: listenFD)
        let linkFD = ks_portfwd_attach(namespace.rawValue, listener.rawValue)
        guard linkFD >= 0 else { throw .system(operation: "attach the sk_lookup program to \(namespacePath)", errno: -linkFD) }
        let link = FileDescriptor(owning: linkFD)
        do {
            let loop = try AcceptLoop(listener: listenFD, name: "port-forward", failed: { [logger] in
                logger.error("port forward: poll: \($0)")
            }) { [self] fd in accepted(FileDescriptor(owning: fd)) }
            self.loop.withLock { $0 = loop }
            handles.withLock { $0 = Handles(listener: listener, link: link) }
        } catch {
            throw .system(operation: "start the port-forward accept loop", errno: error.rawValue)
        }
    }

    /// Ends the accept loop and every relay, and detaches the program. Idempotent.
    func stop() async {
        if (try? await WorkerThread.run(name: "port-fwd-stop") { self.stopNow() }) == nil { stopNow() }
    }

    private func stopNow() {
        guard let handles = handles.withLock({ h -> Handles? in defer { h = nil }; return h }) else { return }
        loop.withLock { $0 }?.stop()
        if relays.wait(timeout: .now() + 5) == .success {
            loop.withLock { $0 = nil }  // no relay polls its stop pipe any more: it closes
        }
        _ = handles  // the listener and the link (which detaches the program) close here
    }

    private var stopDescriptor: Int32 { loop.withLock { $0?.stopDescriptor ?? -1 } }

    private func accepted(_ client: FileDescriptor) {
        let port = ks_portfwd_local_port(client.rawValue)
        guard port > 0 else { return }
        relays.enter()
        Task { await self.serve(client, port: UInt16(port)) }
    }

    private func serve(_ client: FileDescriptor, port: UInt16) async {
        let guest: FileDescriptor
        do {
            guest = try await connect()
        } catch {
            logger.warning("port forward to \(port): cannot reach the agent: \(error)")
            reset(client)
            relays.leave()
            return
        }
        do {
            try WorkerThread.detach(name: "port-fwd-\(port)") { [self] in
                relay(client, guest, port: port)
                relays.leave()
            }
        } catch {
            reset(client)
            relays.leave()
        }
    }

    private func relay(_ client: FileDescriptor, _ guest: FileDescriptor, port: UInt16) {
        do {
            try guest.writeAll(PortForwardWire.header(family: 4, port: port))
            var fds = [pollfd(fd: guest.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopDescriptor, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, Self.handshakeTimeoutMilliseconds) == 1, fds[1].revents == 0 else {
                logger.warning("port forward to \(port): no answer from the agent")
                reset(client)
                return
            }
            let status = try guest.read(upTo: 1)
            guard status == [0] else {
                logger.debug("port forward to \(port): the guest answered \(status.first.map { "errno \($0)" } ?? "nothing")")
                reset(client)
                return
            }
        } catch {
            logger.warning("port forward to \(port): agent handshake: \(error)")
            reset(client)
            return
        }
        let rc = ks_relay(client.rawValue, guest.rawValue, stopDescriptor)
        if rc < 0 { logger.debug("port forward to \(port): relay ended: \(Errno(-rc).message)") }
    }

    /// Makes the close of `client` a reset, as a refused connection would be.
    private func reset(_ client: FileDescriptor) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(client.rawValue, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    }
}
