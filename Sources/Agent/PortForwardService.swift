// The guest's end of CRI port forwarding (docs/kubernetes.md, "Port forwarding"): the shim
// relays each connection containerd makes to 127.0.0.1:PORT in the pod's network namespace on
// the host to vsock port 1027 here (PortForwardWire), and this service dials PORT on the guest's
// loopback, where the pod's containers listen (they share the guest's network namespace), and
// relays the bytes.
//
// Threads: one listener thread and one thread per connection, blocked in poll(2); none touches
// the concurrency pool or the ttrpc event loops.

import AgentAPI
import CGuest
import CNet
import Dispatch
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

final class PortForwardService: Sendable {
    static let headerTimeoutMilliseconds: Int32 = 10_000

    private let listener: Int32
    private let loop: Mutex<AcceptLoop?> = Mutex(nil)
    private let log: AgentLog
    private let connections = DispatchGroup()
    private let stopped = Mutex(false)

    /// Listens on vsock `port` (any context id) and starts accepting; nil (logged) when it cannot.
    static func start(port: UInt32 = PortForwardWire.vsockPort, log: AgentLog) -> PortForwardService? {
        let fd = ks_vsock_listen(ks_vmaddr_cid_any, port, 64)
        guard fd >= 0 else {
            log.error("port forward: listen on vsock port \(port): \(Errno(-fd))")
            return nil
        }
        let service = PortForwardService(listener: fd, log: log)
        do {
            let loop = try AcceptLoop(listener: fd, name: "port-forward", failed: { log.error("port forward: poll: \($0)") }) {
                service.startConnection($0)
            }
            service.loop.withLock { $0 = loop }
        } catch {
            close(fd)
            log.error("port forward: accept loop: \(error)")
            return nil
        }
        log.info("port forward listening on vsock port \(port)")
        return service
    }

    private init(listener: Int32, log: AgentLog) {
        self.listener = listener
        self.log = log
    }

    /// Stops accepting, ends every relay and closes every descriptor. Idempotent.
    func stop() {
        let first = stopped.withLock { s -> Bool in
            defer { s = true }
            return !s
        }
        guard first, let loop = loop.withLock({ $0 }) else { return }
        loop.stop()
        connections.wait()
        self.loop.withLock { $0 = nil }  // no relay polls its stop pipe any more: it closes
        close(listener)
    }

    private func startConnection(_ client: Int32) {
        guard let stop = loop.withLock({ $0?.stopDescriptor }) else {
            close(client)
            return
        }
        connections.enter()
        do {
            try WorkerThread.detach(name: "port-fwd") { [self] in
                serve(client, stop: stop)
                close(client)
                connections.leave()
            }
        } catch {
            close(client)
            connections.leave()
        }
    }

    /// One connection: the header, the dial, the status byte, then the relay.
    private func serve(_ client: Int32, stop: Int32) {
        guard let header = readHeader(client, stop: stop), let (family, port) = PortForwardWire.parse(header) else {
            log.warning("port forward: a connection without a valid header")
            return
        }
        let target = ks_portfwd_dial_loopback(Int32(family), port)
        var status = target >= 0 ? 0 : PortForwardWire.status(errno: -target)
        guard send(client, &status, 1, Int32(MSG_NOSIGNAL)) == 1, target >= 0 else {
            if target >= 0 { close(target) }
            log.debug("port forward to \(port): \(target >= 0 ? "the shim went away" : "\(Errno(-target))")")
            return
        }
        defer { close(target) }
        let rc = ks_relay(client, target, stop)
        if rc < 0 { log.debug("port forward to \(port): relay ended: \(Errno(-rc))") }
    }

    private func readHeader(_ fd: Int32, stop: Int32) -> [UInt8]? {
        var header = [UInt8](repeating: 0, count: PortForwardWire.headerSize)
        var got = 0
        while got < header.count {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stop, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, Self.headerTimeoutMilliseconds) == 1, fds[1].revents == 0 else { return nil }
            let n = header.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, $0.count - got, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            got += n
        }
        return header
    }
}
