#!/usr/bin/python3
"""Pod start through containerd's CRI plugin, handler runc vs kata, side by side in one run.

    bench/cri-pod-start.py SOCKET RUNS WORKDIR

One sample: RunPodSandbox, CreateContainer + StartContainer of `echo ready`, until the line is in
the container's CRI log (what kubelet would see first), then the pod is stopped and removed
(not timed). The handlers alternate; prints the median of each and kata/runc. Needs what
Tests/CRI/suite.py needs (containerd with CNI, localhost/pause and localhost/busybox in k8s.io):
scripts/bench.sh sets it up.
"""
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


def main():
    socket, runs, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    args = type("Args", (), {"socket": socket, "handler": "runc", "work": work, "cases": "", "skip_network": ""})()
    s = suite.Suite(args, suite.load_messages())
    times = {"runc": [], "kata": []}
    for _ in range(runs):
        for handler in ("runc", "kata"):
            times[handler].append(sample(s, handler))
    runc, kata = statistics.median(times["runc"]), statistics.median(times["kata"])
    print(f"| pod start (RunPodSandbox -> first output in the CRI log), median of {runs} | runc {runc:.2f} s | kata {kata:.2f} s | kata/runc {kata / runc:.1f}x |")
    print(f"  samples: runc {[round(t, 2) for t in times['runc']]}, kata {[round(t, 2) for t in times['kata']]}")


if __name__ == "__main__":
    main()
