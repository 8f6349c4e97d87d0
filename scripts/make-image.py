#!/usr/bin/env python3
"""Builds an OCI image archive from Debian's busybox-static, offline, for `ctr images import`.

    make-image.py OUT.tar IMAGE_REF [--bare] [CMD ...]

One layer: the skeleton directories, /bin/busybox, a symlink per applet, /etc/passwd, /etc/group
and /etc/hosts. With --bare the layer holds /busybox and nothing else, the way a pause image holds
only its binary (no /etc, /dev or /proc: the runtime must make every mount point). The archive holds oci-layout, index.json (annotated with io.containerd.image.name)
and the blobs. Standard library only; the output is byte-for-byte reproducible.
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

BUSYBOX = "/bin/busybox"
DIRS = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp",
        "root", "run", "var", "home"]
FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
                  "user:x:1000:1000:user:/home:/bin/sh\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
}


def tar_info(name, kind, mode, size=0, target=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, target
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def build_bare_layer():
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        tar.addfile(tar_info("busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
    return raw.getvalue()


def compress(uncompressed):
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0) as gz:
        gz.write(uncompressed)
    return compressed.getvalue()


def build_layer():
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in DIRS:
            tar.addfile(tar_info(d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755))
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        tar.addfile(tar_info("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        for path in sorted(set(applets)):
            path = path.lstrip("/")
            if path == "bin/busybox" or path.split("/")[0] not in ("bin", "sbin", "usr"):
                continue
            tar.addfile(tar_info(path, tarfile.SYMTYPE, 0o777, target="/bin/busybox"))
        for name, text in FILES.items():
            body = text.encode()
            tar.addfile(tar_info(name, tarfile.REGTYPE, 0o644, len(body)), io.BytesIO(body))
    return raw.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: make-image.py OUT.tar IMAGE_REF [--bare] [CMD ...]")
    out, ref, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    bare = cmd[:1] == ["--bare"]
    if bare:
        cmd = cmd[1:]
    cmd = cmd or (["/busybox", "sh"] if bare else ["sh"])
    uncompressed = build_bare_layer() if bare else build_layer()
    layer = compress(uncompressed)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(uncompressed)]},
        "history": [{"created_by": "kata-swift scripts/make-image.py"}],
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(layer), "size": len(layer)}],
    }, sort_keys=True).encode()
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest(manifest), "size": len(manifest),
                       "annotations": {"io.containerd.image.name": ref,
                                       "org.opencontainers.image.ref.name": tag}}],
    }, sort_keys=True).encode()
    entries = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)]
    entries += [("blobs/sha256/" + digest(b)[7:], b) for b in (config, manifest, layer)]
    tmp = out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            tar.addfile(tar_info(d, tarfile.DIRTYPE, 0o755))
        for name, data in entries:
            tar.addfile(tar_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    os.replace(tmp, out)
    print(f"make-image: {out} ({ref}, {len(layer)} byte layer)", file=sys.stderr)


if __name__ == "__main__":
    main()
