#!/usr/bin/env python3
"""Where a sandbox's memory goes: the PSS of each process, split into parts by what its mappings
hold (from /proc/PID/smaps). Used by bench/sandbox-memory.sh; docs/performance.md.

    bench/pss-parts.py [--sandboxes N] PID...

With --sandboxes N (the PIDs of N sandboxes), the last line is per sandbox.

Parts: guest RAM (QEMU's memory-backend memfd, shared with the shim's vhost-user servers; in a shim
running our VMM, the anonymous mappings advised for huge pages, which only guest RAM is, or a VM
template's file mapped private, its pages shared by every VM restored from it), the TCG
translation buffer (QEMU's only writable and executable mapping), the guest kernel and initramfs
files QEMU keeps mapped, code (the program and its shared libraries), and the rest (heap, stacks,
anonymous memory).
"""
import re
import sys


def part(name, perms, flags):
    if name.startswith("/memfd:memory-backend"):
        return "guest RAM"
    if perms.startswith("rwx") and name in ("", "[anon]"):
        return "TCG buffer"  # (QEMU advises it for huge pages too)
    if name in ("", "[anon]") and "hg" in flags:
        return "guest RAM"  # our VMM (Sources/VMM/MmapGuestMemory.swift) advises guest RAM MADV_HUGEPAGE
    if name.endswith(".vm"):
        return "guest RAM"  # restored from a VM template (docs/snapshots.md): the file, mapped private
    if re.search(r"(vmlinux|bzImage)$", name):
        return "kernel file"
    if re.search(r"\.cpio(\.\w+)?$", name):
        return "initramfs file"
    if name.startswith("/") and not name.startswith("/memfd:"):
        return "code"
    return "heap+anon"


def parts(pid):
    """PSS in KiB per part. smaps gives VmFlags after Pss, so each mapping is read whole first."""
    totals, mapping = {}, None

    def close(m):
        if m:
            key = part(m["name"], m["perms"], m["flags"])
            totals[key] = totals.get(key, 0) + m["pss"]

    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+$", fields[0]):
                close(mapping)
                mapping = {"name": " ".join(fields[5:]), "perms": fields[1], "pss": 0, "flags": []}
            elif mapping and fields[0] == "Pss:":
                mapping["pss"] = int(fields[1])
            elif mapping and fields[0] == "VmFlags:":
                mapping["flags"] = fields[1:]
    close(mapping)
    return totals


def main():
    order = ["guest RAM", "TCG buffer", "kernel file", "initramfs file", "code", "heap+anon"]
    args = sys.argv[1:]
    sandboxes = 1
    if args[:1] == ["--sandboxes"]:
        sandboxes, args = int(args[1]), args[2:]
    everything, guest = 0, 0
    for pid in args:
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            totals = parts(pid)
        except OSError:
            continue
        total = sum(totals.values())
        everything += total
        guest += totals.get("guest RAM", 0)
        if total < 1024:
            continue
        shown = ", ".join(f"{p} {totals[p] / 1024:.1f}" for p in order if totals.get(p, 0) >= 102)
        print(f"    {comm:<18} {total / 1024:6.1f} MiB  ({shown})")
    if guest:
        each = f" per sandbox ({sandboxes})" if sandboxes > 1 else ""
        print(f"    beyond the guest RAM it touched{each}: {(everything - guest) / sandboxes / 1024:.1f} MiB"
              f" (guest RAM {guest / sandboxes / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
