#!/usr/bin/env python3
"""Package.swift says the truth (run by `make test` and `make test-unit`).

Fails, naming the target and the module, when:
  - a target imports a module it does not declare (system modules aside), or declares one it
    never imports;
  - a source file hides a dependency behind `@_exported import`;
  - a target depends on a target listed after it (dependencies point up the list: the lowest
    layers come first);
  - docs/ARCHITECTURE.md's module table does not list exactly each target's direct dependencies
    (targets by name, products by their package's name; "—" for none; a closing "(note)" is prose).

`scripts/check-package.py --write-docs` rewrites that column from Package.swift.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM = {"Foundation", "FoundationEssentials", "Glibc", "Musl", "Dispatch", "Synchronization", "Testing", "XCTest",
          "_Concurrency", "os"}
IMPORT = re.compile(r"^\s*(?:@\w+\s+)*import\s+(?:(?:struct|enum|class|func|protocol|typealias|var|let)\s+)?(\w+)")


def package():
    out = subprocess.check_output(["swift", "package", "dump-package"], cwd=ROOT, stderr=subprocess.DEVNULL)
    return json.loads(out)


def dependencies(target):
    """(module names, names as the docs table writes them) of a target's direct dependencies."""
    modules, written = set(), set()
    for d in target.get("dependencies", []):
        if "byName" in d:
            modules.add(d["byName"][0]); written.add(d["byName"][0])
        elif "target" in d:
            modules.add(d["target"][0]); written.add(d["target"][0])
        elif "product" in d:
            modules.add(d["product"][0]); written.add(d["product"][1])
    return modules, written


def imports(path):
    found, exported = set(), []
    for directory, _, files in os.walk(path):
        for name in files:
            if not name.endswith(".swift"):
                continue
            file = os.path.join(directory, name)
            with open(file, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    m = IMPORT.match(line)
                    if m:
                        found.add(m.group(1))
                        if "@_exported" in line:
                            exported.append(f"{os.path.relpath(file, ROOT)}:{number}")
    return found, exported


def documented():
    """Module name -> set of dependencies, from docs/ARCHITECTURE.md's module table."""
    table = {}
    with open(os.path.join(ROOT, "docs/ARCHITECTURE.md"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^\| `(\w+)`(?: \(C\))? \|.*\| ([^|]*) \|\s*$", line)
            if not m:
                continue
            column = re.sub(r"\s*\([^)]*\)\s*$", "", m.group(2)).strip()  # a closing "(note)" is prose
            table[m.group(1)] = set() if column in ("—", "-") else {d.strip() for d in column.split(",")}
    return table


def write_docs(desc):
    written = {t["name"]: dependencies(t)[1] for t in desc["targets"]}
    order = [t["name"] for t in desc["targets"]]
    path = os.path.join(ROOT, "docs/ARCHITECTURE.md")
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^(\| `(\w+)`(?: \(C\))? \|.*\| )([^|]*)( \|\s*)$", line)
            if m and m.group(2) in written:
                deps = sorted(written[m.group(2)], key=lambda d: (d not in order, order.index(d) if d in order else 0, d))
                note = re.search(r"\s*\([^)]*\)\s*$", m.group(3))
                line = m.group(1) + (", ".join(deps) if deps else "—") + (note.group(0) if note else "") + m.group(4)
            lines.append(line)
    # The table's rows in Package.swift's order, lowest layer first.
    rows = [i for i, line in enumerate(lines) if re.match(r"^\| `(\w+)`", line)]
    if rows:
        def key(line):
            name = re.match(r"^\| `(\w+)`", line).group(1)
            return order.index(name) if name in order else len(order)
        block = sorted((lines[i] for i in rows), key=key)
        for i, line in zip(rows, block):
            lines[i] = line
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)


def main():
    desc = package()
    if "--write-docs" in sys.argv:
        write_docs(desc)
    problems = []
    order = {t["name"]: i for i, t in enumerate(desc["targets"])}
    docs = documented()
    for target in desc["targets"]:
        name = target["name"]
        kind = target["type"]
        path = os.path.join(ROOT, target.get("path") or (("Tests/" if kind == "test" else "Sources/") + name))
        declared, written = dependencies(target)
        if kind != "system" and os.path.isdir(path) and any(f.endswith(".swift") for _, _, fs in os.walk(path) for f in fs):
            used, exported = imports(path)
            for module in sorted(used - declared - SYSTEM - {name}):
                problems.append(f"{name}: imports {module} but Package.swift does not declare it")
            for module in sorted(declared - used):
                problems.append(f"{name}: declares {module} but no file imports it")
            for place in exported:
                problems.append(f"{name}: @_exported import at {place} hides a dependency; import it where it is used")
        for d in target.get("dependencies", []):
            dep = (d.get("byName") or d.get("target") or [None])[0]
            if dep in order and order[dep] > order[name]:
                problems.append(f"{name}: depends on {dep}, which Package.swift lists after it (list lower layers first)")
        if kind == "regular":
            if name not in docs:
                problems.append(f"{name}: missing from docs/ARCHITECTURE.md's module table")
            elif docs[name] != written:
                problems.append(f"{name}: docs/ARCHITECTURE.md says it depends on {sorted(docs[name])}, Package.swift on {sorted(written)}")
    for name in sorted(set(docs) - {t["name"] for t in desc["targets"]}):
        problems.append(f"docs/ARCHITECTURE.md lists {name}, which is not a target")
    if problems:
        print("check-package: Package.swift and the code or docs disagree:", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        return 1
    print(f"check-package: {len(desc['targets'])} targets: imports, order and docs/ARCHITECTURE.md agree with Package.swift")
    return 0


if __name__ == "__main__":
    sys.exit(main())
