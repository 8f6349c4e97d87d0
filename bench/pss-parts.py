#!/usr/bin/env python3
"""Where a sandbox's memory goes: the PSS of each process, split into parts by what its mappings
hold (from /proc/PID/smaps). Used by bench/sandbox-memory.sh; docs/performance.md.

    bench/pss-parts.py PID...

Parts: guest RAM (QEMU's memory-backend memfd, shared with the shim's vhost-user servers), the TCG
translation buffer (QEMU's only writable and executable mapping), the guest kernel and initramfs
files QEMU keeps mapped, code (the program and its shared libraries), and the rest (heap, stacks,
anonymous memory).
"""
import re
import sys


def part(name, perms):
    if name.startswith("/memfd:memory-backend"):
        return "guest RAM"
    if perms.startswith("rwx") and name in ("", "[anon]"):
        return "TCG buffer"
    if re.search(r"(vmlinux|bzImage)$", name):
        return "kernel file"
    if re.search(r"\.cpio(\.\w+)?$", name):
        return "initramfs file"
    if name.startswith("/") and not name.startswith("/memfd:"):
        return "code"
    return "heap+anon"


def parts(pid):
    totals, current = {}, None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", fields[0]):
                current = part(" ".join(fields[5:]), fields[1])
            elif fields[0] == "Pss:" and current:
                totals[current] = totals.get(current, 0) + int(fields[1])
    return totals


def main():
    order = ["guest RAM", "TCG buffer", "kernel file", "initramfs file", "code", "heap+anon"]
    for pid in sys.argv[1:]:
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            totals = parts(pid)
        except OSError:
            continue
        total = sum(totals.values())
        if total < 1024:
            continue
        shown = ", ".join(f"{p} {totals[p] / 1024:.1f}" for p in order if totals.get(p, 0) >= 102)
        print(f"    {comm:<18} {total / 1024:6.1f} MiB  ({shown})")


if __name__ == "__main__":
    main()
