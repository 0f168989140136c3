# flatsnap: `make demo` runs the main job, `make test` runs every test.
SHELL := /bin/bash
NODE ?= $(shell command -v node)
NODE_INCLUDE := $(shell dirname $$(dirname $$(readlink -f $(NODE))))/include/node

.PHONY: all build native typecheck test test-unit test-integration test-e2e test-kernel kernel-tier bench demo clean install

all: build

node_modules/.package-lock.json: package.json
	npm install --no-fund --no-audit
	@touch $@

native/build/flatsnap.node: native/flatsnap.c
	@mkdir -p native/build
	# Built aside, then renamed: a running driver or test has the old file mapped, and
	# rewriting it in place would crash it (SIGSEGV).
	gcc -O2 -Wall -Wextra -Werror -shared -fPIC -DNODE_GYP_MODULE_NAME=flatsnap -I$(NODE_INCLUDE) -o $@.tmp $<
	mv -f $@.tmp $@

native: native/build/flatsnap.node

build: node_modules/.package-lock.json native
	node build.mjs

typecheck: node_modules/.package-lock.json
	npx tsc -p tsconfig.json --noEmit

# Everything: unit, integration (real zfs-fuse / XFS; needs root) and e2e (simulator),
# then, as root, the kernel tier (below). `make test KERNEL=0` skips the kernel tier
# locally; under CI=true it always runs (and fails if it cannot).
KERNEL ?= 1
test: build typecheck
	@t0=$$(date +%s); rc=0; npm test || rc=$$?; \
	echo "make test: unit + integration + e2e took $$(( $$(date +%s) - t0 )) s (exit $$rc)"; exit $$rc
	@if [ "$${CI:-}" = true ] || { [ "$(KERNEL)" != 0 ] && [ "$$(id -u)" = 0 ]; }; then \
	  $(MAKE) --no-print-directory kernel-tier; \
	else echo "make test: kernel tier skipped ($(if $(filter 0,$(KERNEL)),KERNEL=0,not root); make test-kernel runs it)"; fi

test-unit: build
	npm test -- test/unit

test-integration: build
	npm test -- test/integration

test-e2e: build
	npm test -- test/e2e

# Kernel tier (root; test/kernel/README.md): OpenZFS 2.x and OCFS2 (local and a two-node
# cluster) in qemu guests. The guest image is built once per machine and cached in
# /var/cache/flatsnap/kernel-vm (5-10 min on 2 cores); later runs only look it up (3-8 s).
test-kernel: build
	@$(MAKE) --no-print-directory kernel-tier

# The tier itself, without the build (make test has just done it): image lookup or build,
# then both test files in one jest run; prints how long each took. The image directory is
# the last line image.sh prints (a build's mke2fs says "Creating regular file" on stdout).
kernel-tier:
	@t0=$$(date +%s); img=$$(test/kernel/image/image.sh path) || exit $$?; t1=$$(date +%s); \
	img=$${img##*$$'\n'}; \
	echo "kernel tier: image $$img ready in $$(( t1 - t0 )) s"; \
	rc=0; FLATSNAP_VM_IMAGE=$$img FLATSNAP_KERNEL_TIER=1 npm test -- test/kernel || rc=$$?; \
	echo "kernel tier: tests took $$(( $$(date +%s) - t1 )) s (exit $$rc)"; exit $$rc

bench: build
	node bench/cold-start.mjs

# The whole XenCenter snapshot lifecycle on the XAPI simulator and real storage, as a
# report (demo/lifecycle.ts; as root). BACKEND=zfs (default: a zfs-fuse pool on an image
# file, or DATASET=pool/path) or BACKEND=reflink (an XFS loop filesystem, or SRPATH=/dir).
demo: build
	node_modules/.bin/tsx demo/lifecycle.ts --backend "$(or $(BACKEND),zfs)" --dataset "$(DATASET)" --path "$(SRPATH)"

clean:
	rm -rf native/build plugin/FlatSnapSR plugin/flatsnap plugin/flatsnap-tapdisk plugin/flatsnap-lib
