"""A client for the CRI streaming server (Exec, Attach, PortForward), as kubectl reaches it.

containerd answers Exec, Attach and PortForward with a URL on its streaming server. The server
speaks SPDY and WebSocket; this client speaks WebSocket (RFC 6455) with the `v4.channel.k8s.io`
subprotocol: every binary message starts with a channel byte.
- exec and attach: 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON status when the process ends),
  4 resize (JSON {"Width": w, "Height": h}). v4 has no way to close stdin.
- port forward: two channels per port (data, error); the server's first message on each starts
  with the port, 2 bytes little-endian.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import urllib.parse

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOL = "v4.channel.k8s.io"

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4


def apply_mask(payload, mask):
    """XORs `payload` with the repeated 4-byte `mask` (one big-integer operation, not a byte loop)."""
    n = len(payload)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class StreamError(Exception):
    pass


class ChannelSocket:
    """One WebSocket connection carrying channel.k8s.io messages."""

    def __init__(self, url, query=None, timeout=60):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http":
            raise StreamError(f"unexpected streaming URL {url!r}")
        path = parts.path + ("?" + parts.query if parts.query else "")
        if query:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(query)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {PROTOCOL}\r\n\r\n")
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise StreamError(f"the streaming server closed during the handshake: {self.buffer!r}")
            self.buffer += chunk
        head, rest = self.buffer.split(b"\r\n\r\n", 1)
        self.buffer, self.offset = bytearray(rest), 0
        lines = head.decode(errors="replace").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise StreamError(f"no WebSocket upgrade: {lines[0]!r} {self.buffer[:300]!r}")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise StreamError(f"bad Sec-WebSocket-Accept {headers.get('sec-websocket-accept')!r}")
        if headers.get("sec-websocket-protocol") != PROTOCOL:
            raise StreamError(f"the server chose protocol {headers.get('sec-websocket-protocol')!r}")
        self.closed = False

    def _read(self, count):
        while len(self.buffer) - self.offset < count:
            if self.offset:
                del self.buffer[:self.offset]
                self.offset = 0
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        data = bytes(self.buffer[self.offset:self.offset + count])
        self.offset += count
        return data

    def _frame(self, opcode, payload):
        mask = os.urandom(4)
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + apply_mask(payload, mask))

    def send(self, channel, data):
        self._frame(0x2, bytes([channel]) + data)

    def resize(self, width, height):
        self.send(RESIZE, json.dumps({"Width": width, "Height": height}).encode())

    def receive(self):
        """The next (channel, data) message, or None once the server closed the connection."""
        message = b""
        while True:
            try:
                b0, b1 = self._read(2)
            except EOFError:
                return None
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = apply_mask(payload, mask)
            if opcode == 0x8:
                if not self.closed:
                    self.closed = True
                    try:
                        self._frame(0x8, payload[:2])
                    except OSError:
                        pass
                return None
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if b0 & 0x80:
                if not message:
                    continue
                return message[0], message[1:]

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self._frame(0x8, struct.pack(">H", 1000))
            except OSError:
                pass
        self.sock.close()


def run_exec(url, stdin=b"", resize=None, until=None, timeout=60):
    """Runs an exec or attach session: sends `stdin` (and a resize) once the server is ready,
    collects stdout and stderr until the server closes (or `until(stdout)` holds), and returns
    (stdout, stderr, status) where status is the error channel's JSON (None if none came)."""
    conn = ChannelSocket(url, timeout=timeout)
    out, err, status = bytearray(), bytearray(), None
    sent = False
    try:
        while True:
            message = conn.receive()
            if message is None:
                break
            channel, data = message
            if not sent:
                sent = True
                if resize:
                    conn.resize(*resize)
                if stdin:
                    conn.send(STDIN, stdin)
            if channel == STDOUT:
                out += data
            elif channel == STDERR:
                err += data
            elif channel == ERROR and data:
                status = json.loads(data)
            if until and until(out):
                break
    finally:
        conn.close()
    return bytes(out), bytes(err), status


def exit_code(status):
    """The process's exit code from the error channel's status (0 for Success)."""
    if status is None:
        raise StreamError("no status on the error channel")
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message"))
    raise StreamError(f"failure status without an exit code: {status}")


def forward(url, port, payload, timeout=60):
    """Opens a port-forward session to `port`, sends `payload` on the data channel, and returns
    (data received until the server closes, error channel text)."""
    conn = ChannelSocket(url, query={"port": str(port)}, timeout=timeout)
    data, error = bytearray(), bytearray()
    seen = {0: False, 1: False}
    try:
        sent = False
        while True:
            message = conn.receive()
            if message is None:
                break
            channel, chunk = message
            if channel in seen and not seen[channel]:
                seen[channel] = True
                if struct.unpack("<H", chunk[:2])[0] != port:
                    raise StreamError(f"channel {channel} announced port {chunk[:2]!r}, not {port}")
                chunk = chunk[2:]
            if channel == 0:
                data += chunk
            elif channel == 1:
                error += chunk
            if not sent and seen[0] and seen[1]:
                sent = True
                conn.send(0, payload)
    finally:
        conn.close()
    return bytes(data), error.decode(errors="replace")
