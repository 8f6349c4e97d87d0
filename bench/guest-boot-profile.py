#!/usr/bin/env python3
"""Where a guest kernel's boot goes under QEMU/TCG: a sampling profile of the guest's RIP.

Boots the guest kernel (guest-image/build-kernel.sh's vmlinux) under QEMU/TCG with the arguments the
shim gives a TCG guest, no initramfs and no disk, so it boots until it looks for its root and
panics (panic=-1, -no-reboot: QEMU exits). Meanwhile it asks QEMU's monitor for the vCPU's registers
every few milliseconds and maps each RIP to the kernel function holding it (`nm vmlinux`). It
prints the functions with the most samples and, per time slice from QEMU's `cont`, the top three.
docs/performance.md, "The guest kernel's boot under TCG".

    bench/guest-boot-profile.py [--kernel VMLINUX] [--slice-ms 50] [--plain] [KERNEL_ARG ...]

--plain leaves out the TCG arguments the shim adds (to see what they save); KERNEL_ARGs are added.
A sample is one `info registers` round trip (about 3 ms here), so counts are rough times.
"""
import argparse
import bisect
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shim's kernel arguments for a TCG guest (Sources/Hypervisor/QEMU/QEMUCommand.swift,
# baseCmdline and tcgCmdline); tsc_early_khz is added from /proc/cpuinfo.
BASE = ["console=ttyS0", "reboot=t", "panic=-1", "random.trust_cpu=on", "quiet"]
TCG = ["noapictimer", "no_timer_check", "noreplace-smp"]


def host_tsc_khz():
    for line in open("/proc/cpuinfo"):
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    sys.exit("guest-boot-profile: no 'cpu MHz' in /proc/cpuinfo")


def kernel_symbols(vmlinux):
    """The text symbols of `nm VMLINUX`, sorted: (addresses, names)."""
    out = subprocess.run(["nm", vmlinux], check=True, capture_output=True, text=True).stdout
    symbols = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] in "tTwW":
            symbols.append((int(fields[0], 16), fields[2]))
    symbols.sort()
    return [a for a, _ in symbols], [n for _, n in symbols]


class Monitor:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rw")
        self.file.readline()  # greeting
        self.call("qmp_capabilities")

    def call(self, command, **arguments):
        self.file.write(json.dumps({"execute": command, "arguments": arguments} if arguments else {"execute": command}) + "\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError
            reply = json.loads(line)
            if "return" in reply or "error" in reply:
                return reply


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel")
    parser.add_argument("--slice-ms", type=int, default=50)
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("args", nargs="*")
    opts = parser.parse_args()
    kernel = opts.kernel or os.path.join(
        subprocess.run([os.path.join(HERE, "guest-image/build-kernel.sh")], check=True, capture_output=True,
                       text=True).stdout.strip(), "vmlinux")
    cmdline = BASE + ["tsc_early_khz=%d" % host_tsc_khz()] + ([] if opts.plain else TCG) + opts.args
    addresses, names = kernel_symbols(kernel)
    work = tempfile.mkdtemp(prefix="boot-profile.")
    qmp = os.path.join(work, "qmp.sock")
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-M", "microvm,acpi=off", "-accel", "tcg,tb-size=16", "-cpu", "max", "-m", "128",
         "-display", "none", "-nodefaults", "-no-user-config", "-no-reboot", "-serial", "file:" + os.path.join(work, "console"),
         "-qmp", "unix:%s,server=on,wait=off" % qmp, "-S", "-kernel", kernel, "-append", " ".join(cmdline)],
        stdin=subprocess.DEVNULL)
    samples = []
    elapsed = 0.0
    try:
        for _ in range(200):
            if os.path.exists(qmp):
                break
            time.sleep(0.05)
        monitor = Monitor(qmp)
        monitor.call("cont")
        start = time.monotonic()
        while qemu.poll() is None and time.monotonic() - start < opts.timeout:
            try:
                reply = monitor.call("human-monitor-command", **{"command-line": "info registers"})
            except (EOFError, OSError):
                break
            now = time.monotonic() - start
            for token in reply.get("return", "").split():
                if token.startswith("RIP="):
                    samples.append((now, int(token[4:], 16)))
                    break
            time.sleep(0.002)
        elapsed = time.monotonic() - start
    finally:
        if qemu.poll() is None:
            qemu.kill()
        qemu.wait()
        console_path = os.path.join(work, "console")
        console = open(console_path, errors="replace").read() if os.path.exists(console_path) else ""
        shutil.rmtree(work, ignore_errors=True)

    def function(rip):
        i = bisect.bisect_right(addresses, rip) - 1
        return names[i] if i >= 0 and rip >= 0xFFFFFFFF80000000 else "(not kernel text)"

    print("kernel arguments: %s" % " ".join(cmdline))
    print("%d samples over %.0f ms (QEMU's cont to its exit)" % (len(samples), elapsed * 1000))
    for line in console.splitlines():
        if "Kernel panic" in line or "VFS:" in line:
            print("console: " + line.strip())
            break
    total = collections.Counter(function(rip) for _, rip in samples)
    print("\nfunctions with the most samples:")
    for name, count in total.most_common(15):
        print("  %5.1f %%  %s" % (100.0 * count / max(1, len(samples)), name))
    print("\nper %d ms from cont (samples: top three):" % opts.slice_ms)
    slices = collections.defaultdict(collections.Counter)
    for when, rip in samples:
        slices[int(when * 1000 // opts.slice_ms)][function(rip)] += 1
    for index in sorted(slices):
        top = ", ".join("%s %d" % item for item in slices[index].most_common(3))
        print("  %5d ms  %3d: %s" % (index * opts.slice_ms, sum(slices[index].values()), top))


if __name__ == "__main__":
    main()
