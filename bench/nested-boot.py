#!/usr/bin/env python3
"""Our in-process VMM against QEMU-KVM on the same KVM: boot to the init marker, side by side.

Runs where /dev/kvm runs a guest userspace (inside the nested KVM host: `make bench-nested`).
Each round boots the same vmlinux, marker initramfs and command line, 1 vCPU and the same
memory, under: our VMM (`kata-ctl boot`), `qemu-system-x86_64 -M microvm -accel kvm`, and
`qemu-system-x86_64 -M pc -accel kvm` loading the PVH vmlinux. Runs alternate; medians and
ratios to ours are printed as a markdown table.

Per run:
  - wall time from spawning the VMM process to the marker on its console;
  - KVM exits taken while it ran (tracefs hist triggers on kvm:kvm_exit, and on
    kvm:kvm_userspace_exit for those that reached the VMM process): the same kernel counters for
    every VMM;
  - peak RSS of the VMM process (wait4's ru_maxrss), beside the guest memory size.

usage: bench/nested-boot.py ROUNDS KATA_CTL VMLINUX INITRD
"""
import os
import statistics
import subprocess
import sys
import time

MARKER = b"init reached userspace"
CMDLINE = "console=ttyS0 reboot=k panic=-1 quiet"
MEMORY_MIB = 256
TRACE = "/sys/kernel/tracing"
EVENTS = {"exits": "kvm/kvm_exit", "userspace exits": "kvm/kvm_userspace_exit"}
HIST = "hist:keys=common_pid:vals=hitcount"


def tracefs():
    if not os.path.exists(f"{TRACE}/events/kvm"):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACE], check=False)
    for event in EVENTS.values():
        with open(f"{TRACE}/events/{event}/trigger", "a") as f:  # append: O_TRUNC would drop every trigger
            f.write(HIST)


def clear_counts():
    for event in EVENTS.values():
        with open(f"{TRACE}/events/{event}/trigger", "a") as f:  # append: O_TRUNC would drop every trigger
            f.write(HIST + ":clear")


def read_counts():
    counts = {}
    for name, event in EVENTS.items():
        with open(f"{TRACE}/events/{event}/hist") as f:
            hits = [line.split(":")[1] for line in f if line.strip().startswith("Hits:")]
        counts[name] = int(hits[0]) if hits else 0
    return counts


def run(argv, timeout=300):
    """Spawns argv, waits for the marker, then for the process; returns the measurements."""
    clear_counts()
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen, marker_at = b"", None
    while marker_at is None:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        seen = (seen + chunk)[-4096:]
        if MARKER in seen:
            marker_at = time.monotonic() - start
        if time.monotonic() - start > timeout:
            break
    # The marker init reboots at once: our VMM stops (reboot=k), QEMU exits (-no-reboot).
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + 20
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            break
        try:
            os.read(proc.stdout.fileno(), 65536)  # keep the console pipe from filling up
        except BlockingIOError:
            pass
        time.sleep(0.01)
    proc.returncode = status
    proc.stdout.close()
    counts = read_counts()
    if marker_at is None:
        tail = seen[-400:].decode(errors="replace")
        print(f"nested-boot: {argv[0]} did not reach the marker; console tail: {tail}", file=sys.stderr)
    return {"marker": marker_at, "rss": usage.ru_maxrss, **counts}


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__.strip().splitlines()[-1])
    rounds, kata_ctl, kernel, initrd = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    tracefs()
    qemu = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", str(MEMORY_MIB), "-smp", "1",
            "-kernel", kernel, "-initrd", initrd, "-append", CMDLINE, "-display", "none", "-no-reboot",
            "-nodefaults", "-no-user-config", "-serial", "stdio"]
    vmms = {
        "ours (kata-ctl boot)": [kata_ctl, "boot", "--kernel", kernel, "--initrd", initrd, "--memory", str(MEMORY_MIB),
                                 "--vcpus", "1", "--cmdline", CMDLINE, "--cpu-template", "host"],
        "QEMU -M microvm": qemu[:1] + ["-M", "microvm,acpi=off,rtc=off"] + qemu[1:],
        "QEMU -M pc (PVH)": qemu[:1] + ["-M", "pc"] + qemu[1:],
    }
    results = {name: [] for name in vmms}
    for i in range(rounds):
        for name, argv in vmms.items():
            r = run(argv)
            results[name].append(r)
            marker = "-" if r["marker"] is None else f"{r['marker']:.2f} s"
            print(f"nested-boot: round {i + 1} {name}: marker {marker}, {r['exits']} exits "
                  f"({r['userspace exits']} to userspace), peak RSS {r['rss'] // 1024} MiB", file=sys.stderr)

    def med(name, key):
        values = [r[key] for r in results[name] if r[key] is not None and r["marker"] is not None]
        return statistics.median(values) if values else None

    ours = next(iter(vmms))
    print(f"\n| {rounds} rounds, 1 vCPU, {MEMORY_MIB} MiB, `{CMDLINE}` | spawn to marker (s) | KVM exits | "
          "exits to userspace | peak RSS (MiB) | reached |")
    print("|---|---|---|---|---|---|")
    for name in vmms:
        cells = []
        for key, fmt in (("marker", "{:.2f}"), ("exits", "{:.0f}"), ("userspace exits", "{:.0f}"), ("rss", "{:.1f}")):
            value, base = med(name, key), med(ours, key)
            if key == "rss":
                value, base = (None if value is None else value / 1024), (None if base is None else base / 1024)
            if value is None:
                cells.append("-")
            elif name == ours or not base:
                cells.append(fmt.format(value))
            else:
                cells.append(f"{fmt.format(value)} (ours/this {base / value:.2f})")
        reached = sum(1 for r in results[name] if r["marker"] is not None)
        print(f"| {name} | " + " | ".join(cells) + f" | {reached}/{rounds} |")


if __name__ == "__main__":
    main()
