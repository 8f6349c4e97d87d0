#!/usr/bin/python3
"""Pod start and TCP throughput host to pod through containerd's CRI plugin, runc vs kata.

    bench/cri-pod-start.py SOCKET RUNS WORKDIR [MEGABYTES(128)]

Pod start, one sample: RunPodSandbox, CreateContainer + StartContainer of `echo ready`, until the
line is in the container's CRI log (what kubelet would see first), then the pod is stopped and
removed (not timed). Throughput: a pod runs `nc -l -p 5001 > /dev/null`; the host connects to the
pod IP and sends MEGABYTES; timed from connect to the receiver closing. Port forwarding: 64 MiB
from the pod's loopback to the host through CRI PortForward. The handlers alternate;
prints the median of each and kata/runc. Needs what
Tests/CRI/suite.py needs (containerd with CNI, localhost/pause and localhost/busybox in k8s.io):
scripts/bench.sh sets it up.

With KATA_WARM_GLOB set (bench/cri-pod-start.sh with KATA_WARM=1: a warm pool of one,
docs/warm-sandboxes.md), each kata sample starts once a file matches it (a ready warm sandbox's
claim socket), so it measures a pod taking a warm sandbox; only pod start is measured then.
bench/cri-pod-start.sh with KATA_TEMPLATE=1 points it at the saved VM template instead, and
KATA_LABEL names what the kata samples measured. CRI_START_ONLY=1 measures pod start only.
"""
import glob
import importlib.util
import os
import statistics
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("suite", os.path.join(here, "..", "Tests", "CRI", "suite.py"))
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)


def sample(s, handler):
    s.args.handler = handler
    config = s.pod_config(f"bench-{handler}")
    t0 = time.time()
    pod = s.run_pod(config)
    s.container(pod, config, "first", ["echo", "ready"])
    path = os.path.join(config.log_directory, "first-0.log")
    while not (os.path.exists(path) and "ready" in open(path).read()):
        if time.time() - t0 > 300:
            raise SystemExit(f"cri-pod-start: {handler}: no output after 300 s")
        time.sleep(0.01)
    elapsed = time.time() - t0
    s.remove_pods()
    return elapsed


def throughput(s, handler, megabytes):
    import socket as sockets
    s.args.handler = handler
    config = s.pod_config(f"tcp-{handler}")
    pod = s.run_pod(config)
    s.container(pod, config, "sink", ["sh", "-c", "nc -l -p 5001 > /dev/null"])
    ip = s.pod_ip(pod)
    chunk = b"x" * (1 << 20)
    deadline = time.time() + 120
    while True:
        try:
            conn = sockets.create_connection((ip, 5001), timeout=10)
            break
        except OSError:
            if time.time() > deadline:
                raise SystemExit(f"cri-pod-start: {handler}: {ip}:5001 never accepted")
            time.sleep(0.2)
    t0 = time.time()
    for _ in range(megabytes):
        conn.sendall(chunk)
    conn.shutdown(sockets.SHUT_WR)
    conn.settimeout(300)
    while conn.recv(65536):
        pass
    elapsed = time.time() - t0
    conn.close()
    s.remove_pods()
    return megabytes / elapsed


def port_forward_rate(s, handler, megabytes):
    """Pod to host through containerd's port forwarding: an HTTP GET of a MEGABYTES file from the
    pod's tmpfs, timed from the request to the stream's end (a VM: through our sk_lookup listener,
    vsock and the agent's relay)."""
    pb = s.pb
    s.args.handler = handler
    config = s.pod_config(f"pf-{handler}")
    pod = s.run_pod(config)
    c = s.container(pod, config, "blob", ["sh", "-c", f"head -c {megabytes << 20} /dev/zero > /dev/shm/blob && "
                                          "touch /dev/shm/ready && httpd -f -p 127.0.0.1:8082 -h /dev/shm"])
    deadline = time.time() + 120
    while s.exec(c, "test -f /dev/shm/ready")[0] != 0:
        if time.time() > deadline:
            raise SystemExit(f"cri-pod-start: {handler}: the blob was never ready")
        time.sleep(0.2)
    while True:
        url = s.url("PortForward", pb.PortForwardRequest(pod_sandbox_id=pod, port=[8082]))
        t0 = time.time()
        data, error = suite.streaming.forward(url, 8082, b"GET /blob HTTP/1.0\r\n\r\n", timeout=300)
        elapsed = time.time() - t0
        if len(data) >= megabytes << 20:
            break
        if time.time() > deadline:
            raise SystemExit(f"cri-pod-start: {handler}: port forward gave {len(data)} bytes ({error})")
        time.sleep(0.5)
    s.remove_pods()
    return megabytes / elapsed


def main():
    socket, runs, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    megabytes = int(sys.argv[4]) if len(sys.argv) > 4 else 128
    args = type("Args", (), {"socket": socket, "handler": "runc", "work": work, "cases": "", "skip_network": ""})()
    s = suite.Suite(args, suite.load_messages())
    warm = os.environ.get("KATA_WARM_GLOB")
    times = {"runc": [], "kata": []}
    if warm:
        sample(s, "kata")  # the first pod fills the pool (or saves the template)
    for _ in range(runs):
        for handler in ("runc", "kata"):
            if warm and handler == "kata":
                deadline = time.time() + 120
                while not glob.glob(warm) and time.time() < deadline:
                    time.sleep(0.05)
            times[handler].append(sample(s, handler))
    runc, kata = statistics.median(times["runc"]), statistics.median(times["kata"])
    label = os.environ.get("KATA_LABEL", "kata from a warm sandbox" if warm else "kata")
    print(f"| pod start (RunPodSandbox -> first output in the CRI log), median of {runs} | runc {runc:.2f} s | {label} {kata:.2f} s | kata/runc {kata / runc:.1f}x |")
    print(f"  samples: runc {[round(t, 2) for t in times['runc']]}, kata {[round(t, 2) for t in times['kata']]}")
    if warm or os.environ.get("CRI_START_ONLY") == "1":
        return
    rates = {"runc": [], "kata": []}
    for _ in range(max(1, runs // 2)):
        for handler in ("runc", "kata"):
            rates[handler].append(throughput(s, handler, megabytes))
    runc, kata = statistics.median(rates["runc"]), statistics.median(rates["kata"])
    print(f"| TCP host -> pod, {megabytes} MiB, median of {len(rates['runc'])} | runc {runc:.0f} MiB/s | kata {kata:.1f} MiB/s | kata/runc {kata / runc:.2f} |")
    forwarded = {"runc": [], "kata": []}
    for _ in range(max(1, runs // 2)):
        for handler in ("runc", "kata"):
            forwarded[handler].append(port_forward_rate(s, handler, 64))
    runc, kata = statistics.median(forwarded["runc"]), statistics.median(forwarded["kata"])
    print(f"| port forward pod -> host (CRI PortForward, WebSocket), 64 MiB, median of {len(forwarded['runc'])} | runc {runc:.0f} MiB/s | kata {kata:.1f} MiB/s | kata/runc {kata / runc:.2f} |")


if __name__ == "__main__":
    main()
