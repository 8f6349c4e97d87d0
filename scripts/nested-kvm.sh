#!/usr/bin/env bash
# A nested KVM host: boots an L1 Linux under QEMU/TCG emulating an AMD CPU with SVM, in which
# kvm_amd gives a real (nested) /dev/kvm, and runs one command there. docs/nested-kvm.md.
#
#   scripts/nested-kvm.sh run [--mem MiB] [--cpus N] [--timeout S] [--keep-log] -- COMMAND [ARGS...]
#   scripts/nested-kvm.sh prepare      fetch and cache the L1 kernel, modules and initramfs only
#
# L1 sees this machine's whole filesystem read-only over virtio-9p, under a tmpfs overlay (so
# every path is writable in L1 and nothing written there reaches the host). COMMAND runs as root
# in the same working directory with the same environment; its stdout and stderr stream back on
# two serial ports. Exit status: COMMAND's; 124 when the deadline killed L1; 125 when L1 itself
# failed (no status came back: QEMU error, L1 panic, freeze), with the tail of L1's console.
#
# The L1 kernel and modules come from Debian's linux-image package (downloaded, unpacked, never
# installed), cached under $KATA_CACHE keyed by the package version and this recipe.
# L1's CPU is TCG's `max` model (SVM, NPT); NESTED_KVM_CPU names another (e.g. qemu64,+svm,+npt).
set -euo pipefail

cache_root=${KATA_CACHE:-/var/cache/kata-swift}
# Bump when a change to this script changes what `prepare` builds.
recipe=2
# Modules L1 loads, in dependency order (virtio PCI, 9p, overlayfs; tun, veth, bridge and the tc
# ingress/u32/mirred pieces for pod networks on our VMM; KVM on AMD).
modules=(
  kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
  kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko
  kernel/drivers/virtio/virtio_pci.ko
  kernel/fs/netfs/netfs.ko kernel/fs/fscache/fscache.ko
  kernel/net/9p/9pnet.ko kernel/net/9p/9pnet_virtio.ko kernel/fs/9p/9p.ko
  kernel/fs/overlayfs/overlay.ko
  kernel/drivers/net/tun.ko kernel/drivers/net/veth.ko kernel/net/llc/llc.ko kernel/net/802/stp.ko
  kernel/net/bridge/bridge.ko kernel/net/sched/sch_ingress.ko kernel/net/sched/cls_u32.ko
  kernel/net/sched/act_mirred.ko
  kernel/virt/lib/irqbypass.ko kernel/drivers/crypto/ccp/ccp.ko
  kernel/arch/x86/kvm/kvm.ko kernel/arch/x86/kvm/kvm-amd.ko
)

die() { echo "nested-kvm: $*" >&2; exit 125; }

# Prints the cache directory holding vmlinuz and initramfs.cpio, building it if needed.
prepare() {
  command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 is missing (run scripts/install-deps.sh)"
  [ -x /bin/busybox ] || die "/bin/busybox is missing (package busybox-static; run scripts/install-deps.sh)"
  local pkg version key out
  pkg=$(apt-cache depends linux-image-amd64 2> /dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || die "cannot tell which linux-image package linux-image-amd64 names (apt-get update?)"
  version=$(apt-cache show "$pkg" 2> /dev/null | awk '/^Version:/ {print $2; exit}')
  key=$( { echo "$pkg $version recipe $recipe"; printf '%s\n' "${modules[@]}"; sed -n '/^l1_init()/,/^}/p' "$0"; } | sha256sum | cut -c1-16)
  out="$cache_root/nested-l1-$key"
  if [ -f "$out/vmlinuz" ] && [ -f "$out/initramfs.cpio" ]; then echo "$out"; return; fi

  local work; work=$(mktemp -d "$cache_root/nested-l1-build.XXXXXX")
  echo "nested-kvm: preparing L1 from $pkg $version" >&2
  (cd "$work" && apt-get download -q "$pkg=$version" > /dev/null 2>&1) || { rm -rf "$work"; die "apt-get download $pkg=$version failed"; }
  dpkg-deb -x "$work"/*.deb "$work/pkg"
  local release; release=$(ls "$work/pkg/lib/modules")
  mkdir -p "$work/stage"/{bin,sbin,dev,proc,sys,mnt/root,mnt/rw,newroot,modules}
  cp /bin/busybox "$work/stage/bin/busybox"
  for m in "${modules[@]}"; do
    [ -f "$work/pkg/lib/modules/$release/$m" ] || { rm -rf "$work"; die "$pkg has no $m"; }
    cp "$work/pkg/lib/modules/$release/$m" "$work/stage/modules/"
  done
  printf '%s\n' "${modules[@]##*/}" > "$work/stage/modules/order"
  l1_init > "$work/stage/init"; chmod 0755 "$work/stage/init"
  (cd "$work/stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0 > "$work/initramfs.cpio")
  mkdir -p "$out.tmp"
  cp "$work/pkg/boot/vmlinuz-$release" "$out.tmp/vmlinuz"
  mv "$work/initramfs.cpio" "$out.tmp/initramfs.cpio"
  echo "$pkg $version $release" > "$out.tmp/version"
  rm -rf "$out" "$work"; mv "$out.tmp" "$out"
  # Older recipes or kernel versions: superseded.
  find "$cache_root" -maxdepth 1 -name 'nested-l1-*' ! -name "nested-l1-$key" ! -name 'nested-l1-build.*' -exec rm -rf {} + 2> /dev/null || true
  echo "nested-kvm: cached L1 in $out" >&2
  echo "$out"
}

# L1's /init (busybox sh): modules, the host root under a tmpfs overlay, the job, the status.
l1_init() {
  cat << 'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
fail() { echo "nested-kvm-l1: $*" > /dev/ttyS0; echo 125 > /dev/ttyS3; reboot -f; }
for m in $(cat /modules/order); do insmod /modules/$m || fail "insmod $m"; done
job=$(sed -n 's/.*nestedkvm.job=\([^ ]*\).*/\1/p' /proc/cmdline)
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /mnt/root || fail "mount hostroot"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw && mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay -o lowerdir=/mnt/root,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot || fail "overlay mount"
r=/newroot
mount -t proc proc $r/proc; mount -t sysfs sysfs $r/sys; mount -t devtmpfs devtmpfs $r/dev
mkdir -p $r/dev/pts $r/dev/shm; mount -t devpts -o newinstance,ptmxmode=0666 devpts $r/dev/pts; mount -t tmpfs tmpfs $r/dev/shm
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup 2>/dev/null || true
for d in run var/lib/containerd; do [ -L $r/$d ] || { mkdir -p $r/$d; mount -t tmpfs -o mode=0755 tmpfs $r/$d; }; done
# A fresh /tmp too (overlayfs cannot be the upper layer of containerd's snapshots), with the job
# directory bound back in, and the caller's directory when it lies below /tmp (writable, on the
# overlay).
cwd=$(cat /mnt/root$job/cwd)
mkdir -p /mnt/hosttmp && mount --bind $r/tmp /mnt/hosttmp
mount -t tmpfs -o mode=1777 tmpfs $r/tmp && mkdir -p $r$job && mount --bind /mnt/root$job $r$job
case "$cwd" in /tmp/?*) mkdir -p "$r$cwd" && mount --bind "/mnt/hosttmp${cwd#/tmp}" "$r$cwd" ;; esac
ip link set lo up 2>/dev/null
[ -c /dev/kvm ] || fail "no /dev/kvm after loading kvm_amd"
for t in 1 2; do stty -F /dev/ttyS$t raw -echo; done
chroot $r /bin/bash "$job/job.sh" > /dev/ttyS1 2> /dev/ttyS2 < /dev/null
rc=$?
echo $rc > /dev/ttyS3
sync
reboot -f
INIT
}

# Where L1's CPU is when the deadline fires, from QEMU's monitor: five samples a second apart of
# the instruction pointer (L1's, or the nested guest's while L1 runs one) and the halt state, then
# L1's APIC timer and pending interrupts, and the CPU time QEMU has used (docs/nested-kvm.md).
where_l1_runs() {
  local sock=$1 qemu=$qemu_pid
  [ -S "$sock" ] || return 0
  echo "nested-kvm: QEMU (L1) used $(ps -o times= -p "$qemu" | tr -d ' ') s of CPU in $(ps -o etimes= -p "$qemu" | tr -d ' ') s; L1's CPUs:"
  python3 - "$sock" <<'PY'
import re, socket, sys, time
def ask(cmd):
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
    out = b""
    try:
        while not out.endswith(b"(qemu) "): out += s.recv(65536)
        out = b""; s.sendall(cmd.encode() + b"\n")
        while out.count(b"(qemu) ") < 1: out += s.recv(65536)
    except socket.timeout: pass
    s.close(); return out.decode(errors="replace")
for i in range(5):
    regs = ask("info registers -a")
    rips = re.findall(r"RIP=([0-9a-f]+)", regs)
    hlt = re.findall(r"HLT=(\d)", regs)
    print("  sample %d: RIP %s HLT %s" % (i, " ".join(rips), " ".join(hlt)))
    time.sleep(1)
for line in ask("info cpus").splitlines() + ask("info lapic").splitlines():
    if "CPU #" in line or re.match(r"(LVTT|Timer|ISR|IRR|APR)\b", line): print("  " + line.strip())
PY
}

usage() { sed -n '5,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

run() {
  local mem=4096 cpus=1 timeout=3600 keep_log=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --mem) mem=$2; shift 2 ;;
      --cpus) cpus=$2; shift 2 ;;
      --timeout) timeout=$2; shift 2 ;;
      --keep-log) keep_log=1; shift ;;
      --) shift; break ;;
      *) usage ;;
    esac
  done
  [ $# -ge 1 ] || usage
  local l1; l1=$(prepare)
  local job; job=$(mktemp -d /tmp/nested-kvm.XXXXXX)
  # The job L1 runs: this environment, this directory, this command (bash-quoted).
  {
    echo "set +e"
    export -p | grep -v -E '^declare -x (OLDPWD|SHLVL|_)='
    echo "export NESTED_KVM_L1=1"
    printf 'cd %q || exit 125\n' "$PWD"
    printf 'exec'; printf ' %q' "$@"; printf '\n'
  } > "$job/job.sh"
  printf '%s' "$PWD" > "$job/cwd"
  : > "$job/status"
  local qemu_pid= rc
  cleanup() {
    [ -n "$qemu_pid" ] && kill -9 "$qemu_pid" 2> /dev/null && wait "$qemu_pid" 2> /dev/null
    if [ "$keep_log" = 1 ]; then echo "nested-kvm: L1 console kept in $job/console.log" >&2; else rm -rf "$job"; fi
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  # nohz=off highres=off: L1's local APIC timer runs periodic. TCG now and then leaves L1 halted
  # with its timer interrupt pending in the APIC but never delivered; with a one-shot timer
  # nothing re-arms it and L1 sleeps forever, the next periodic expiry delivers it
  # (docs/nested-kvm.md, "Hangs").
  qemu-system-x86_64 -accel tcg -cpu ${NESTED_KVM_CPU:-max} -m "$mem" -smp "$cpus" \
    -M pc -nodefaults -no-reboot -nographic -no-user-config \
    -kernel "$l1/vmlinuz" -initrd "$l1/initramfs.cpio" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 no5lvl nohz=off highres=off nestedkvm.job=$job ${NESTED_KVM_APPEND:-}" \
    -chardev file,id=console,path="$job/console.log" -serial chardev:console \
    -chardev file,id=out,path=/dev/stdout,append=on -serial chardev:out \
    -chardev file,id=err,path=/dev/stderr,append=on -serial chardev:err \
    -chardev file,id=status,path="$job/status" -serial chardev:status \
    -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
    -monitor unix:"$job/monitor.sock",server=on,wait=off < /dev/null &
  qemu_pid=$!
  local deadline=$(( $(date +%s) + timeout ))
  while kill -0 "$qemu_pid" 2> /dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      where_l1_runs "$job/monitor.sock" >&2 || true
      kill -9 "$qemu_pid" 2> /dev/null; wait "$qemu_pid" 2> /dev/null || true; qemu_pid=
      echo "nested-kvm: L1 did not finish within ${timeout} s; killed it. Last console lines:" >&2
      tail -n 20 "$job/console.log" >&2 || true
      exit 124
    fi
    sleep 1
  done
  wait "$qemu_pid" || true
  qemu_pid=
  rc=$(tr -dc '0-9' < "$job/status")
  if [ -z "$rc" ]; then
    echo "nested-kvm: L1 ended without reporting the command's status. Last console lines:" >&2
    tail -n 30 "$job/console.log" >&2 || true
    exit 125
  fi
  exit "$rc"
}

case "${1:-}" in
  prepare) prepare > /dev/null ;;
  run) shift; run "$@" ;;
  *) usage ;;
esac
