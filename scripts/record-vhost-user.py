#!/usr/bin/env python3
"""Records the vhost-user messages a real QEMU sends to a vsock backend.

   scripts/record-vhost-user.py SOCKET OUT

Listens on SOCKET, accepts one frontend (QEMU's vhost-user-vsock-device), answers just enough
(features, protocol features MQ|CONFIG, queue count 2, config guest_cid 3, vring base 0) and
writes one line per message to OUT: request, flags, payload hex, number of fds received.
The lines become the recorded sequences of Tests/VhostUserTests.
"""
import socket
import struct
import sys

path, out = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
conn, _ = srv.accept()
log = open(out, "w")

def reply(request, payload):
    conn.sendall(struct.pack("<III", request, 0x5, len(payload)) + payload)

while True:
    try:
        data, anc, _, _ = conn.recvmsg(12, socket.CMSG_SPACE(8 * 4))
    except OSError:
        break
    if len(data) < 12:
        break
    request, flags, size = struct.unpack("<III", data)
    fds = []
    for level, kind, blob in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += list(struct.unpack("<%di" % (len(blob) // 4), blob[: len(blob) - len(blob) % 4]))
    payload = b""
    while len(payload) < size:
        chunk = conn.recv(size - len(payload))
        if not chunk:
            break
        payload += chunk
    log.write("%d %d %s %d\n" % (request, flags, payload.hex() or "-", len(fds)))
    log.flush()
    if request == 1:  # GET_FEATURES: VERSION_1 | PROTOCOL_FEATURES | EVENT_IDX | INDIRECT_DESC
        reply(1, struct.pack("<Q", (1 << 32) | (1 << 30) | (1 << 29) | (1 << 28)))
    elif request == 15:  # GET_PROTOCOL_FEATURES: MQ | CONFIG
        reply(15, struct.pack("<Q", (1 << 0) | (1 << 9)))
    elif request == 17:  # GET_QUEUE_NUM
        reply(17, struct.pack("<Q", 2))
    elif request == 24:  # GET_CONFIG: echo offset/size/flags, guest_cid 3
        offset, length, cfgflags = struct.unpack("<III", payload[:12])
        reply(24, struct.pack("<III", offset, length, cfgflags) + struct.pack("<Q", 3)[:length].ljust(length, b"\0"))
    elif request == 11:  # GET_VRING_BASE
        index, _ = struct.unpack("<II", payload[:8])
        reply(11, struct.pack("<II", index, 0))
    elif flags & 0x8:  # NEED_REPLY
        reply(request, struct.pack("<Q", 0))
    for fd in fds:
        try:
            import os
            os.close(fd)
        except OSError:
            pass
