#!/usr/bin/env bash
# Installs flatsnap into a XenServer / XCP-ng dom0 (run on every pool host).
#
#   plugin/install.sh [--node /abs/path/to/node] [--root DESTDIR] [--no-relayout-cron]
#
# What it does, and why:
#  - copies FlatSnapSR and flatsnap-lib/ (bundle, V8 code cache, native addon) into
#    /opt/xensource/sm, where xapi looks for <Name>SR plugins;
#  - stamps the absolute Node path into the shebangs: xapi runs plugins with
#    PATH=/sbin:/usr/sbin:/bin:/usr/bin and no HOME;
#  - writes /etc/xapi.conf.d/flatsnap.conf with sm-plugins= the host's current list
#    plus "flatsnap": a sm-plugins line in conf.d REPLACES the list (xapi's
#    gen_list_option), so the whole list has to be restated;
#  - links /etc/xapi.d/plugins/flatsnap-tapdisk to its launcher: the XAPI host plugin
#    the SR master calls to pause a VDI's tapdisk on this host for a live snapshot of
#    a shared SR (docs/shared-srs.md);
#  - writes /etc/cron.d/flatsnap-relayout: hourly `flatsnap relayout --all-srs` (the
#    fragmented disks of this host's reflink SRs, docs/fragmentation.md), niced, to
#    SMlog; --no-relayout-cron removes it instead (or delete the file);
#  - does not restart the toolstack: plugins are discovered at xapi start, so run
#    `xe-toolstack-restart` when no storage operation is in flight.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
node=""
root=""
relayout_cron=1
while (($#)); do
  case "$1" in
    --node) node=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --no-relayout-cron) relayout_cron=0; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $node ]] || node=$(command -v node || true)
[[ -n $node ]] || { echo "install.sh: no node found; pass --node /abs/path/to/node (Node >= 20)" >&2; exit 1; }
node=$(readlink -f "$node")
"$node" -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
  { echo "install.sh: $node is older than Node 20" >&2; exit 1; }
[[ -f $here/FlatSnapSR && -f $here/flatsnap-lib/driver.cjs ]] ||
  { echo "install.sh: run 'make build' first ($here/FlatSnapSR is missing)" >&2; exit 1; }

smdir=$root/opt/xensource/sm
confdir=$root/etc/xapi.conf.d
install -d -m 0755 "$smdir/flatsnap-lib" "$confdir"

# Stage, then rename into place: a half-copied plugin must never be what xapi execs.
stamp() { # src dst
  local tmp="$2.tmp.$$"
  { printf '#!%s\n' "$node"; tail -n +2 "$1"; } > "$tmp"
  chmod 0755 "$tmp"
  mv -f "$tmp" "$2"
}
for path in "$here"/flatsnap-lib/*.cjs "$here"/flatsnap-lib/*.node; do
  [[ -f $path ]] || continue
  f=$(basename "$path")
  install -m 0644 "$path" "$smdir/flatsnap-lib/$f.tmp.$$"
  mv -f "$smdir/flatsnap-lib/$f.tmp.$$" "$smdir/flatsnap-lib/$f"
done
# The code cache is tied to the Node binary: let the first call write a fresh one.
rm -f "$smdir"/flatsnap-lib/*.cache
stamp "$here/FlatSnapSR" "$smdir/FlatSnapSR"
[[ -f $here/flatsnap ]] && stamp "$here/flatsnap" "$smdir/flatsnap"
# xapi runs host plugins only from /etc/xapi.d/plugins (by name); the link keeps the
# launcher beside its flatsnap-lib, which it finds through its real path. Relative, so
# that a --root install points into its own tree.
if [[ -f $here/flatsnap-tapdisk ]]; then
  stamp "$here/flatsnap-tapdisk" "$smdir/flatsnap-tapdisk"
  plugindir=$root/etc/xapi.d/plugins
  install -d -m 0755 "$plugindir"
  ln -sfn ../../../opt/xensource/sm/flatsnap-tapdisk "$plugindir/flatsnap-tapdisk.tmp.$$"
  mv -Tf "$plugindir/flatsnap-tapdisk.tmp.$$" "$plugindir/flatsnap-tapdisk"
fi


# sm-plugins: the current whitelist (xapi.conf, then conf.d in order), plus flatsnap.
current=""
for f in "$root/etc/xapi.conf" "$root"/etc/xapi.conf.d/*.conf; do
  [[ -f $f && $f != "$confdir/flatsnap.conf" ]] || continue
  line=$(grep -E '^[[:space:]]*sm-plugins[[:space:]]*=' "$f" | tail -n 1 || true)
  [[ -n $line ]] && current=${line#*=}
done
current=$(echo "$current" | xargs)
if [[ $current != "*" && " $current " != *" flatsnap "* ]]; then
  printf '# Written by flatsnap install.sh: the whole list, since a conf.d line replaces it.\nsm-plugins=%s\n' \
    "$(echo "$current flatsnap" | xargs)" > "$confdir/flatsnap.conf.tmp.$$"
  mv -f "$confdir/flatsnap.conf.tmp.$$" "$confdir/flatsnap.conf"
fi

# The periodic relayout: between snapshots, so that a snapshot finds its disk contiguous
# (the driver's own relayout runs right after a snapshot, on what was written before it).
# flock -n: a run still going an hour later is not joined by a second one. Results go to
# SMlog from the command itself; stderr (xapi unreachable...) through logger, likewise.
crondir=$root/etc/cron.d
if ((relayout_cron)) && [[ -f $smdir/flatsnap ]]; then
  install -d -m 0755 "$crondir"
  cat > "$crondir/flatsnap-relayout.tmp.$$" <<'EOF'
# Written by flatsnap install.sh: relayout the fragmented disks of every flatsnap reflink SR
# plugged on this host (device-config:relayout not "off"; a shared SR on the pool master).
# docs/fragmentation.md. Remove this file, or run install.sh --no-relayout-cron, to stop it.
SHELL=/bin/sh
PATH=/sbin:/usr/sbin:/bin:/usr/bin
17 * * * * root flock -n /var/lock/flatsnap-relayout.lock nice -n 19 ionice -c 2 -n 7 /opt/xensource/sm/flatsnap relayout --all-srs 2>&1 >/dev/null | logger -p local2.warning -t flatsnap-relayout
EOF
  chmod 0644 "$crondir/flatsnap-relayout.tmp.$$"
  mv -f "$crondir/flatsnap-relayout.tmp.$$" "$crondir/flatsnap-relayout"
else
  rm -f "$crondir/flatsnap-relayout"
fi

# Warm the code cache with xapi's own discovery call, as xapi will make it.
env -i PATH=/sbin:/usr/sbin:/bin:/usr/bin "$smdir/FlatSnapSR" \
  '<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:NULL</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>' \
  > /dev/null
echo "flatsnap installed in $smdir; run xe-toolstack-restart to register the 'flatsnap' SR type."
