# unionroot: `make demo` boots one client in QEMU against a local NFS server;
# `make test` runs every test tier, QEMU boots included. Both set up the machine first.
SHELL := /bin/bash
CARGO ?= cargo
MUSL := x86_64-unknown-linux-musl
LINUXRC := target/$(MUSL)/release/linuxrc
# aarch64 nodes: cross-built, linked by Debian's gcc-aarch64-linux-gnu (.cargo/config.toml)
MUSL_ARM64 := aarch64-unknown-linux-musl
LINUXRC_ARM64 := target/$(MUSL_ARM64)/release/linuxrc
# linuxrc ships in every initramfs: a build that outgrows 1.5 MiB (stripped) fails
LINUXRC_MAX_BYTES := 1572864
UNIONROOT := target/release/unionroot
N ?= 5
export UNIONROOT_CACHE ?= $(HOME)/.cache/unionroot

.PHONY: all setup kernel kernel-arm64 linuxrc linuxrc-arm64 host demo test unit fuzz lint e2e \
	e2e-arm64 bench storm storm-failover storm-test ceph clean

all: linuxrc linuxrc-arm64 host

# check_size FILE: fail when linuxrc is over LINUXRC_MAX_BYTES. The release profile strips it
# (Cargo.toml, strip = true), so its size as built is its stripped size.
check_size = n=$$(stat -c %s $(1)); \
	if [ $$n -gt $(LINUXRC_MAX_BYTES) ]; then \
	  echo "$(1): $$n bytes, over the $(LINUXRC_MAX_BYTES)-byte limit: trim its dependencies" >&2; \
	  exit 1; \
	fi; echo "$(1): $$n bytes stripped (limit $(LINUXRC_MAX_BYTES))"

# apt packages and the rustup musl target (idempotent; quick when already done)
setup:
	@scripts/setup-host.sh

# Debian's stock kernel, cached under $(UNIONROOT_CACHE) keyed by version
kernel: setup
	@qemu/fetch-kernel.sh >/dev/null

linuxrc: setup
	$(CARGO) build --release --locked --target $(MUSL) -p linuxrc
	@$(call check_size,$(LINUXRC))

linuxrc-arm64: setup
	$(CARGO) build --release --locked --target $(MUSL_ARM64) -p linuxrc
	@$(call check_size,$(LINUXRC_ARM64))

# Debian's stock arm64 kernel, cached the same way
kernel-arm64: setup
	@qemu/fetch-kernel.sh arm64 >/dev/null

host: setup
	$(CARGO) build --release --locked -p unionroot

demo: kernel linuxrc host
	qemu/demo.sh

test: lint unit fuzz e2e storm-test ceph

# qemu/*_test.py: the harness's Python (rpcstat.py's pcap and NFSv4 decoding) on built captures
unit: setup
	$(CARGO) test --locked --workspace
	python3 -m unittest discover -s qemu -p '*_test.py'

# The fuzz tier, on stable: each target of init/core/tests/fuzz.rs runs FUZZ_SECS seconds over
# its seeds (init/core/testdata/fuzz/) and mutations of them, one target at a time (seven
# targets: about a minute). Prints executions, time and seed per target; a failure prints the
# input in hex and how to replay it. UNIONROOT_FUZZ_SEED=<seed> repeats a run's sequence.
# Needs only cargo (no setup). Coverage-guided runs on nightly: init/core/fuzz/README.md.
FUZZ_SECS ?= 8
fuzz:
	UNIONROOT_FUZZ_SECS=$(FUZZ_SECS) $(CARGO) test --locked -p unionroot-core --test fuzz \
		-- --nocapture --test-threads=1

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked --target $(MUSL) -p linuxrc -p unionroot-core -- -D warnings
	$(CARGO) clippy --locked --target $(MUSL_ARM64) -p linuxrc -p unionroot-core -- -D warnings
	shellcheck -x qemu/*.sh tests/*.sh tests/fixtures/*.sh tests/fixtures/debian/files/usr/local/sbin/*

e2e: kernel linuxrc host e2e-arm64
	tests/e2e.sh
	tests/e2e-root.sh

# aarch64 nodes in qemu-system-aarch64 (TCG): a handful of boots, about 10 s each
e2e-arm64: kernel-arm64 linuxrc-arm64 host
	tests/e2e-arm64.sh

bench: kernel linuxrc host
	qemu/bench.sh $(N)

# Boot storms (qemu/storm.sh): N nodes (default 8) boot at once against HEADS NFS heads
# (default 3), for N = 1 (three times), 4 and N: linuxrc, the busybox baseline and the control
# (the kernel alone); per-node phases, heads and NFS calls, time-to-all against the CPU floor and
# where the cores' time went, timelines in out/storm/*.svg. Passes only with zero failures.
storm: N = 8
HEADS ?= 3
storm: kernel linuxrc host
	qemu/storm.sh --nodes "$$(printf '%s\n' 1 4 $(N) | sort -nu | xargs)" --heads $(HEADS)

# One head is killed as soon as a node runs linuxrc; its nodes must fail over, zero failures.
storm-failover: N = 8
storm-failover: kernel linuxrc host
	qemu/storm.sh --nodes $(N) --heads $(HEADS) --kinds linuxrc --kill 1 --out out/storm-failover

# make test's storm: 4 linuxrc nodes, 2 heads; every node boots, each head serves one at least.
storm-test: kernel linuxrc host
	qemu/storm.sh --nodes 4 --heads 2 --kinds linuxrc --every-head --out out/storm-test

# Two NFS heads over a single-node CephFS (mon, mgr, a BlueStore OSD on a file, an MDS): node A
# writes /home through head 1, node B reads it through head 2 (issue 10). Output in out/ceph/.
ceph: kernel linuxrc host
	qemu/ceph.sh

clean:
	$(CARGO) clean
	rm -rf out
