# unionroot: `make demo` boots one client in QEMU against a local NFS server;
# `make test` runs every test tier, QEMU boots included. Both set up the machine first.
SHELL := /bin/bash
CARGO ?= cargo
MUSL := x86_64-unknown-linux-musl
LINUXRC := target/$(MUSL)/release/linuxrc
UNIONROOT := target/release/unionroot
N ?= 5
export UNIONROOT_CACHE ?= $(HOME)/.cache/unionroot

.PHONY: all setup kernel linuxrc host demo test unit fuzz lint e2e bench ceph clean

all: linuxrc host

# apt packages and the rustup musl target (idempotent; quick when already done)
setup:
	@scripts/setup-host.sh

# Debian's stock kernel, cached under $(UNIONROOT_CACHE) keyed by version
kernel: setup
	@qemu/fetch-kernel.sh >/dev/null

linuxrc: setup
	$(CARGO) build --release --locked --target $(MUSL) -p linuxrc

host: setup
	$(CARGO) build --release --locked -p unionroot

demo: kernel linuxrc host
	qemu/demo.sh

test: lint unit fuzz e2e ceph

unit: setup
	$(CARGO) test --locked --workspace

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
	shellcheck -x qemu/*.sh tests/*.sh tests/fixtures/*.sh tests/fixtures/debian/files/usr/local/sbin/*

e2e: kernel linuxrc host
	tests/e2e.sh
	tests/e2e-root.sh

bench: kernel linuxrc host
	qemu/bench.sh $(N)

# Two NFS heads over a single-node CephFS (mon, mgr, a BlueStore OSD on a file, an MDS): node A
# writes /home through head 1, node B reads it through head 2 (issue 10). Output in out/ceph/.
ceph: kernel linuxrc host
	qemu/ceph.sh

clean:
	$(CARGO) clean
	rm -rf out
