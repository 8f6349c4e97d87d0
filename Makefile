# kata-swift: the two commands are `make demo` and `make test` (as root, on a fresh Debian 12 host).
# Every target installs what it needs first. Slow deterministic outputs (the guest kernel, the
# protoc plugin) are cached under $(KATA_CACHE), keyed by their inputs.

SHELL := /bin/bash
KATA_CACHE ?= /var/cache/kata-swift
export KATA_CACHE
BUILD := build
GUEST := $(BUILD)/guest
SWIFT_BUILD_FLAGS ?=

.PHONY: all deps kernel initramfs agent-initramfs test-initramfs nested-host build release install uninstall test test-unit test-nested bench-nested demo demo-vmm bench soak fuzz protos clean

all: build

deps:
	@scripts/install-deps.sh

# The guest kernel (vmlinux with a PVH note, and a bzImage), cached by fragment + source version.
kernel: deps
	@mkdir -p $(GUEST)
	@dir=$$(guest-image/build-kernel.sh) && ln -sfn "$$dir/vmlinux" $(GUEST)/vmlinux && ln -sfn "$$dir/bzImage" $(GUEST)/bzImage

# The bring-up initramfs: a static /init that prints a marker and reboots.
$(GUEST)/boot-marker: guest-image/init/boot-marker.c
	@mkdir -p $(GUEST)
	gcc -static -Os -s -o $@ $<

$(GUEST)/initramfs-marker.cpio: $(GUEST)/boot-marker guest-image/build-initramfs.sh
	guest-image/build-initramfs.sh $@ $(GUEST)/boot-marker

initramfs: deps $(GUEST)/initramfs-marker.cpio

# The agent's initramfs: static kata-agent as /init (incremental release build in .build-agent),
# and the same tree as a read-only ext4 disk image (the guest's root on virtio-blk).
agent-initramfs: deps
	guest-image/build-agent-initramfs.sh $(GUEST)/initramfs-agent.cpio
	guest-image/build-agent-initramfs.sh --ext4 $(GUEST)/agent.img

# The agent initramfs plus a busybox rootfs at /test-rootfs, for the guest container tests.
test-initramfs: agent-initramfs
	guest-image/build-test-initramfs.sh $(GUEST)/initramfs-agent-test.cpio

# The nested KVM host's L1 kernel, modules and initramfs (Debian's linux-image, cached by version).
nested-host: deps
	@scripts/nested-kvm.sh prepare

build: deps
	@scripts/drop-stale-c-modules.sh .build
	swift build $(SWIFT_BUILD_FLAGS) --build-tests

# What users run: optimized, with the Swift runtime linked in (the binaries need no toolchain).
# A build directory of its own: `make install` also runs inside `make test` (InstallE2ETests),
# where `swift test` holds .build's lock until the tests end.
RELEASE_FLAGS := -c release --static-swift-stdlib --scratch-path .build-release
# The toolchain's static libraries; Package.swift links the shim with FoundationEssentials' archive
# first, so that no part of full Foundation comes in (docs/performance.md). The check below fails
# the build if some of it does again.
SWIFT_STATIC_LIBS := $(shell swiftc -print-target-info 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["paths"]["runtimeResourcePath"] + "_static/linux")' 2>/dev/null)
export KATA_FOUNDATION_ESSENTIALS_ARCHIVE := $(wildcard $(SWIFT_STATIC_LIBS)/libFoundationEssentials.a)
release: deps
	swift build $(RELEASE_FLAGS) --product containerd-shim-kata-v2
	swift build $(RELEASE_FLAGS) --product kata-ctl
	@if nm "$$(swift build $(RELEASE_FLAGS) --show-bin-path)/containerd-shim-kata-v2" | grep -q ' [Tt] \$$s10Foundation'; then \
	  echo "release: the shim links full Foundation (not just FoundationEssentials); see docs/performance.md" >&2; exit 1; fi

# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc]: the release binaries into
# $(PREFIX)/bin, the guest kernel and agent initramfs into $(PREFIX)/share/kata-swift, and the
# default configuration into $(SYSCONFDIR)/kata-swift/configuration.toml, or beside it as
# configuration.toml.new when one is there (an edited file is never overwritten).
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
install: release kernel agent-initramfs
	@scripts/install.sh install "$(DESTDIR)" "$(PREFIX)" "$(SYSCONFDIR)" "$$(swift build $(RELEASE_FLAGS) --show-bin-path)" "$(GUEST)"

# Removes what install put there; a configuration that differs from the installed default stays.
uninstall:
	@scripts/install.sh uninstall "$(DESTDIR)" "$(PREFIX)" "$(SYSCONFDIR)"

export KATA_GUEST_KERNEL := $(abspath $(GUEST)/vmlinux)
export KATA_GUEST_INITRD := $(abspath $(GUEST)/initramfs-marker.cpio)
export KATA_AGENT_INITRD := $(abspath $(GUEST)/initramfs-agent.cpio)
export KATA_AGENT_TEST_INITRD := $(abspath $(GUEST)/initramfs-agent-test.cpio)
export KATA_AGENT_IMAGE := $(abspath $(GUEST)/agent.img)

# Every test: Package.swift's truth (scripts/check-package.py), unit tests, KVM tiny guests, one real boot of our kernel, containerd end to end,
# and (NestedKVMTests) our VMM end to end on a real KVM inside the nested KVM host.
# Serially: many tests block a thread on real processes, VMs and sockets, and on 2 cores Swift
# Testing's parallel runs would let two such tests starve the async ones of the cooperative pool.
test: kernel initramfs agent-initramfs test-initramfs nested-host build
	scripts/check-package.py
	swift test $(SWIFT_BUILD_FLAGS) --skip-build --no-parallel

# Everything that needs a real KVM, inside the nested KVM host: the containerd e2e and CRI suites, the
# agent channel and the debug console on our in-process VMM (docs/nested-kvm.md).
test-nested: kernel agent-initramfs nested-host build
	scripts/nested-kvm.sh run --timeout 5000 -- scripts/nested-tests.sh all

# The unit tests that need no root, KVM, QEMU, containerd or guest image, in seconds: queues,
# devices (fake drivers), memory, boot structures, ttrpc framing, vhost-user messages.
UNIT_SUITES := ^(SystemSupportTests|TTRPCTests|MonitoringTests|GuestMemoryTests|BootTests|VirtIOTests|DevicesTests|VhostUserTests)\.
UNIT_SKIP := TapBackendTests|QEMUVsockTests
test-unit:
	scripts/check-package.py
	@scripts/drop-stale-c-modules.sh .build
	swift build $(SWIFT_BUILD_FLAGS) --build-tests
	swift test $(SWIFT_BUILD_FLAGS) --skip-build --no-parallel --filter '$(UNIT_SUITES)' --skip '$(UNIT_SKIP)'

# Our VMM against QEMU-KVM on a real KVM (boot, exits, RSS; ctr run with kvm, qemu and runc),
# inside the nested KVM host; docs/performance.md.
bench-nested: kernel initramfs agent-initramfs nested-host build release
	swift build -c release --product kata-ctl
	scripts/nested-kvm.sh run --timeout 5000 -- bench/nested.sh 5

demo: kernel agent-initramfs release
	@scripts/demo.sh

# Our in-process KVM VMM boots the guest kernel to /init (minutes on hosts whose KVM emulates).
demo-vmm: kernel initramfs build
	@scripts/demo-vmm.sh

bench: kernel initramfs agent-initramfs build release
	@scripts/bench.sh

# Soak: SOAK_CYCLES sequential sandboxes and execs into one shim, SOAK_PODS pods at once; leak
# checks after each phase (docs/security.md, "Soak"). About 3 s per sandbox on QEMU/TCG.
SOAK_CYCLES ?= 500
SOAK_PODS ?= 10
soak: kernel agent-initramfs build
	bench/soak.sh $(SOAK_CYCLES) $(SOAK_PODS)

# libFuzzer with the address sanitizer on every guest- or peer-facing parser, FUZZ_SECONDS each
# (FUZZ_TARGETS to pick some); new coverage is merged into Tests/Fuzz/corpus (docs/fuzzing.md).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

# Regenerates the committed Swift code from Protos/ and containerd's installed .proto files.
protos: deps
	scripts/gen-protos.sh

clean:
	rm -rf .build .build-agent .build-fuzz .build-release $(BUILD)
