#!/bin/bash
# The kernel tier's guest image, built from Debian packages only and cached outside the
# repository. See test/kernel/README.md.
#
#   image.sh [path]     print the directory of an image for the current key, building it
#                       first if the cache has none (the default; ~6 min on 2 cores)
#   image.sh key        print the cache key and what it is made of
#   image.sh build DIR  build an image into DIR regardless of the cache
#
# The image: Debian bookworm minbase, Debian's 6.1 kernel (linux-image-amd64 of
# bookworm/-security, whatever ABI it points at), OpenZFS 2.x from bookworm-backports
# (zfs-dkms + zfsutils-linux, the modules built by DKMS inside the image's chroot),
# ocfs2-tools, qemu-guest-agent, a static busybox; a tiny initrd; /sbin/vminit as PID 1.
# Nothing ZFS is ever installed on the host: zfsutils-linux Conflicts: zfs-fuse.
#
# Cache: $FLATSNAP_VM_CACHE (default /var/cache/flatsnap/kernel-vm)/<key>/, where the key
# is a hash of this directory's scripts and the exact versions of the kernel, zfs,
# ocfs2-tools, qemu-guest-agent and busybox-static the mirror offers now (resolved with a
# private apt state under the cache; the host's apt configuration is not changed).
# Offline (the mirror unreachable) the newest image built by the same scripts is used.
#
# Needs root (debootstrap, chroot, bind mounts). Environment:
#   FLATSNAP_VM_MIRROR, FLATSNAP_VM_SECURITY_MIRROR   Debian mirrors (default: the host's)
#   FLATSNAP_VM_CACHE                                 the cache directory
#   FLATSNAP_VM_KEEP                                  images kept besides the current one (default 1)
set -euo pipefail
HERE=$(dirname "$(realpath "$0")")
CACHE=${FLATSNAP_VM_CACHE:-/var/cache/flatsnap/kernel-vm}
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
log() { echo "image: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"

# --- mirrors: the host's own Debian sources unless told otherwise -------------------------
host_uris() { # $1: grep -v or grep for security
  { awk '/^URIs:/{for(i=2;i<=NF;i++)print $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null
    awk '/^deb /{print $2}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null; } |
    grep -E '/debian(-security)?/?$' | grep $1 -- '-security' | head -1 | sed 's,/$,,'
}
MIRROR=${FLATSNAP_VM_MIRROR:-$(host_uris -v || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${FLATSNAP_VM_SECURITY_MIRROR:-$(host_uris '' || true)}
SECMIRROR=${SECMIRROR:-http://deb.debian.org/debian-security}
SOURCES="deb $MIRROR bookworm main contrib
deb $MIRROR bookworm-updates main contrib
deb $SECMIRROR bookworm-security main contrib
deb $MIRROR bookworm-backports main contrib"

# The scripts that make the image: any change to them is a new key.
script_hash() { cat "$HERE/image.sh" "$HERE/vminit" "$HERE/initrd-init" | sha256sum | cut -c1-16; }

# --- resolving versions with a private apt state (never the host's lists or status) -------
APTDIR=$CACHE/apt
APT_OPTS=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=$APTDIR/parts"
  -o "Dir::Etc::Preferences=$APTDIR/preferences" -o "Dir::Etc::PreferencesParts=$APTDIR/parts"
  -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::State::status=$APTDIR/status"
  -o "Dir::Cache=$APTDIR/cache" -o "APT::Architecture=amd64" -o "Acquire::Languages=none"
  -o "APT::Get::List-Cleanup=true")
candidate() { # package [release] -> candidate version or nothing
  local extra=(); [ -n "${2:-}" ] && extra=(-o "APT::Default-Release=$2")
  apt-cache "${APT_OPTS[@]}" "${extra[@]}" policy "$1" 2>/dev/null | awk '/Candidate:/{print $2}' | grep -v '(none)' || true
}
resolve() { # sets KV KVER ZVER OVER QVER BVER, or returns 1 when the mirror cannot be read
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/parts"
  printf '%s\n' "$SOURCES" > "$APTDIR/sources.list"; : > "$APTDIR/status"; : > "$APTDIR/preferences"
  apt-get "${APT_OPTS[@]}" -qq update >/dev/null 2>"$APTDIR/update.err" || { cat "$APTDIR/update.err" >&2; return 1; }
  local meta; meta=$(candidate linux-image-amd64)
  [ -n "$meta" ] || return 1
  KV=$(apt-cache "${APT_OPTS[@]}" show "linux-image-amd64=$meta" | sed -n 's/^Depends:.*linux-image-\([0-9][^ ,]*-amd64\).*/\1/p' | head -1)
  [ -n "$KV" ] || return 1
  KVER=$(candidate "linux-image-$KV")
  ZVER=$(candidate zfs-dkms bookworm-backports)
  OVER=$(candidate ocfs2-tools)
  QVER=$(candidate qemu-guest-agent)
  [ -n "$KVER" ] && [ -n "$ZVER" ] && [ -n "$OVER" ] && [ -n "$QVER" ] || return 1
  case "$ZVER" in 2.*) ;; *) die "zfs-dkms $ZVER from bookworm-backports is not OpenZFS 2.x";; esac
  BVER=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo none)
}
key_text() {
  printf 'scripts=%s\nkernel=linux-image-%s=%s\nzfs=%s\nocfs2-tools=%s\nqemu-guest-agent=%s\nbusybox-static=%s\n' \
    "$(script_hash)" "$KV" "$KVER" "$ZVER" "$OVER" "$QVER" "$BVER"
}
key_of() { key_text | sha256sum | cut -c1-16; }

host_packages() {
  local want=(qemu-system-x86 debootstrap busybox-static cpio e2fsprogs) missing=() p
  for p in "${want[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    log "installing host packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# --- building ------------------------------------------------------------------------------
build() { # OUT: a new directory; uses KV KVER ZVER OVER QVER
  local OUT=$1 R=$1/rootfs T0 START
  mkdir -p "$OUT"; OUT=$(realpath "$OUT"); R=$OUT/rootfs
  T0=$(date +%s); START=$T0
  step() { local now; now=$(date +%s); echo "$1 $((now - T0))s" >> "$OUT/build-times.txt"; log "step $1: $((now - T0)) s"; T0=$now; }
  : > "$OUT/build-times.txt"
  host_packages
  step host-packages
  debootstrap --variant=minbase --include=kmod,udev,e2fsprogs,util-linux,procps,gdisk,ca-certificates \
    bookworm "$R" "$MIRROR" > "$OUT/debootstrap.log" 2>&1 || { tail -20 "$OUT/debootstrap.log" >&2; die debootstrap; }
  step debootstrap
  printf '%s\n' "$SOURCES" > "$R/etc/apt/sources.list"
  printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod +x "$R/usr/sbin/policy-rc.d"
  local m
  for m in proc sys dev dev/pts; do mount --bind "/$m" "$R/$m"; done
  # shellcheck disable=SC2064
  trap "for m in dev/pts dev sys proc; do umount '$R'/\$m 2>/dev/null || true; done" EXIT
  chroot "$R" dpkg-divert --local --rename --add /usr/sbin/update-initramfs >/dev/null
  ln -sf /bin/true "$R/usr/sbin/update-initramfs"   # the image has its own tiny initrd
  chroot "$R" apt-get update -qq >/dev/null
  chroot "$R" apt-get install -y -qq --no-install-recommends "ocfs2-tools=$OVER" "qemu-guest-agent=$QVER" \
    > "$OUT/apt-tools.log" 2>&1 || { tail -20 "$OUT/apt-tools.log" >&2; die "ocfs2-tools/qemu-guest-agent"; }
  step ocfs2-tools+qemu-guest-agent
  chroot "$R" apt-get install -y -qq --no-install-recommends "linux-image-$KV=$KVER" "linux-headers-$KV=$KVER" \
    > "$OUT/apt-kernel.log" 2>&1 || { tail -20 "$OUT/apt-kernel.log" >&2; die "kernel $KV"; }
  step kernel+headers
  # DKMS builds zfs.ko for the chroot's kernel ($KV), not the host's; nothing is loaded on the host.
  chroot "$R" apt-get install -y -qq --no-install-recommends -t bookworm-backports "zfs-dkms=$ZVER" "zfsutils-linux=$ZVER" \
    > "$OUT/apt-zfs.log" 2>&1 || { tail -30 "$OUT/apt-zfs.log" >&2; die "zfs $ZVER"; }
  if [ -z "$(find "$R/lib/modules/$KV" -name 'zfs.ko*' | head -1)" ]; then
    log "DKMS did not build zfs for $KV during the install; building it explicitly"
    chroot "$R" dkms autoinstall -k "$KV" >> "$OUT/apt-zfs.log" 2>&1
  fi
  chroot "$R" dkms status > "$OUT/dkms-status.txt" 2>&1 || true
  [ -n "$(find "$R/lib/modules/$KV" -name 'zfs.ko*' | head -1)" ] || die "no zfs.ko for $KV after DKMS (see $OUT/apt-zfs.log)"
  chroot "$R" depmod -a "$KV"
  step zfs-dkms
  chroot "$R" dpkg-query -W > "$OUT/packages.txt"
  chroot "$R" apt-get clean
  for m in dev/pts dev sys proc; do umount "$R/$m"; done; trap - EXIT
  rm -rf "$R"/var/lib/apt/lists/* "$R"/usr/share/doc "$R"/usr/share/man "$R"/usr/share/locale \
    "$R"/usr/src/linux-headers-* "$R"/usr/src/zfs-* "$R"/var/lib/dkms/zfs/*/build "$R/usr/sbin/policy-rc.d"
  ln -sf ../proc/self/mounts "$R/etc/mtab"            # ocfs2-tools needs /etc/mtab
  install -m755 "$HERE/vminit" "$R/sbin/vminit"
  install -m755 /bin/busybox "$R/usr/local/bin/busybox"
  printf '#!/bin/sh\ntouch /run/poweroff; sync; exec /usr/local/bin/busybox poweroff -f\n' > "$R/sbin/shutdown"; chmod +x "$R/sbin/shutdown"
  echo vm > "$R/etc/hostname"
  cp "$R/boot/vmlinuz-$KV" "$OUT/vmlinuz"
  # tiny initrd: busybox + the virtio/ext4 modules; mounts /dev/vda and switch_roots to /sbin/vminit
  local I=$OUT/initrd.d f
  rm -rf "$I"; mkdir -p "$I"/{bin,proc,sys,dev,newroot,mods}; cp /bin/busybox "$I/bin/"
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk crc32c-intel crc32c_generic jbd2 mbcache crc16 ext4; do
    f=$(find "$R/lib/modules/$KV/kernel" -name "$m.ko*" | head -1)
    [ -n "$f" ] || continue   # built into the kernel
    case "$f" in *.xz) xz -dc "$f" > "$I/mods/$m.ko";; *) cp "$f" "$I/mods/$m.ko";; esac
    echo "$m" >> "$I/mods/order"
  done
  install -m755 "$HERE/initrd-init" "$I/init"
  (cd "$I" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$OUT/initrd.cpio.gz"
  rm -rf "$I"
  step initrd
  rm -f "$OUT/root.img"; mke2fs -q -t ext4 -L vmroot -d "$R" "$OUT/root.img" 3G
  rm -rf "$R"
  step root.img
  echo "total $(( $(date +%s) - START ))s" >> "$OUT/build-times.txt"
}

write_manifest() { # DIR KEY
  { key_text; printf 'key=%s\nkv=%s\nbuilt=%s\n' "$2" "$KV" "$(date -u +%FT%TZ)"; } > "$1/manifest.txt"
}

ensure() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"; flock 9
  local key dir
  if resolve; then
    key=$(key_of); dir=$CACHE/$key
    if [ -f "$dir/manifest.txt" ] && [ -f "$dir/root.img" ]; then
      log "cached image $dir (kernel $KV, zfs $ZVER)"
    else
      log "building image $key: kernel $KV ($KVER), zfs $ZVER, ocfs2-tools $OVER, qemu-guest-agent $QVER (about 6 min)"
      rm -rf "$dir.tmp"
      build "$dir.tmp"
      write_manifest "$dir.tmp" "$key"
      rm -rf "$dir"; mv "$dir.tmp" "$dir"
      log "built $dir: $(tail -1 "$dir/build-times.txt")"
    fi
  else
    # Offline: any image the same scripts built, newest first.
    local sh; sh=$(script_hash)
    dir=$(grep -l "^scripts=$sh\$" "$CACHE"/*/manifest.txt 2>/dev/null | xargs -r ls -t 2>/dev/null | head -1 | xargs -r dirname)
    [ -n "$dir" ] || die "cannot resolve package versions from $MIRROR and no cached image was built by these scripts"
    log "WARNING: the mirror could not be read; using the cached image $dir"
  fi
  # Keep the current image and the FLATSNAP_VM_KEEP newest others.
  local keep=${FLATSNAP_VM_KEEP:-1} old
  for old in $(ls -td "$CACHE"/*/ 2>/dev/null | sed 's,/$,,' | grep -v "^$dir\$" | grep -v '/apt$'); do
    if [[ $old == *.tmp ]]; then rm -rf "$old"; continue; fi
    if ((keep > 0)); then keep=$((keep - 1)); continue; fi
    log "pruning old image $old"; rm -rf "$old"
  done
  touch "$dir/manifest.txt"
  echo "$dir"
}

case "${1:-path}" in
  path|ensure) ensure ;;
  key) resolve || die "cannot resolve package versions from $MIRROR"; key_text; echo "key=$(key_of)" ;;
  build) [ -n "${2:-}" ] || die "usage: image.sh build DIR"; resolve || die "cannot resolve package versions from $MIRROR"
         build "$2"; write_manifest "$(realpath "$2")" "$(key_of)"; echo "$(realpath "$2")" ;;
  *) die "usage: image.sh [path|key|build DIR]" ;;
esac
