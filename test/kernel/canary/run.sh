#!/usr/bin/env bash
# Proves the kernel tier can fail: applies a deliberately broken backend change to a
# throwaway worktree of HEAD, runs the tier there, and succeeds only if the tier FAILS.
#
#   test/kernel/canary/run.sh <name>.patch [test/kernel/<file>.test.ts] [jest name regex for the guests]
#
# The test file and the regex (FLATSNAP_KT_GUEST_TESTS) keep the run short; with a regex
# the file layout's "> 10 passed" check fails too, which is the filter, not the patch:
# read the failures listed.
# Root, like the tier. Not part of CI (it would double the tier's time).
set -euo pipefail
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
patch=$(readlink -f "$1")
tests=${2:-test/kernel}
filter=${3:-}
work=$(mktemp -d /var/tmp/flatsnap-canary.XXXXXX)
cleanup() { git -C "$repo" worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

git -C "$repo" worktree add --detach -q "$work/tree" HEAD
cd "$work/tree"
git apply "$patch"
echo "canary: $(basename "$patch") applied to $(git rev-parse --short HEAD):"
git diff --stat
# Its own node_modules: the guest mounts the tree at the same path over 9p, so a
# symlink to the main checkout's would not resolve there.
npm ci --no-fund --no-audit >"$work/npm.log" 2>&1
make build >"$work/build.log" 2>&1
img=$(test/kernel/image/image.sh path | tail -n 1)
rc=0
FLATSNAP_VM_IMAGE=$img FLATSNAP_KERNEL_TIER=1 FLATSNAP_KT_GUEST_TESTS=$filter \
  npm test -- "$tests" >"$work/tier.log" 2>&1 || rc=$?
grep -E '^\s+● |Tests:' "$work/tier.log" | grep -v '● Console' || true
if ((rc == 0)); then
  echo "canary: the kernel tier PASSED with $(basename "$patch") applied: it does not catch this break" >&2
  exit 1
fi
echo "canary: the kernel tier failed (exit $rc), as it must"
