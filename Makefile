# flatsnap: `make demo` runs the main job, `make test` runs every test.
SHELL := /bin/bash
NODE ?= $(shell command -v node)
NODE_INCLUDE := $(shell dirname $$(dirname $$(readlink -f $(NODE))))/include/node

.PHONY: all build native typecheck test test-unit test-integration test-e2e bench demo clean install

all: build

node_modules/.package-lock.json: package.json
	npm install --no-fund --no-audit
	@touch $@

native/build/flatsnap.node: native/flatsnap.c
	@mkdir -p native/build
	gcc -O2 -Wall -Wextra -Werror -shared -fPIC -DNODE_GYP_MODULE_NAME=flatsnap -I$(NODE_INCLUDE) -o $@ $<

native: native/build/flatsnap.node

build: node_modules/.package-lock.json native
	node build.mjs

typecheck: node_modules/.package-lock.json
	npx tsc -p tsconfig.json --noEmit

# Everything: unit, integration (real zfs-fuse / XFS; needs root) and e2e (simulator).
test: build typecheck
	npm test

test-unit: build
	npm test -- test/unit

test-integration: build
	npm test -- test/integration

test-e2e: build
	npm test -- test/e2e

bench: build
	node bench/cold-start.mjs

# The whole XenCenter snapshot lifecycle on the XAPI simulator and real storage, as a
# report (demo/lifecycle.ts; as root). BACKEND=zfs (default: a zfs-fuse pool on an image
# file, or DATASET=pool/path) or BACKEND=reflink (an XFS loop filesystem, or SRPATH=/dir).
demo: build
	node_modules/.bin/tsx demo/lifecycle.ts --backend "$(or $(BACKEND),zfs)" --dataset "$(DATASET)" --path "$(SRPATH)"

clean:
	rm -rf native/build plugin/FlatSnapSR plugin/flatsnap.node
