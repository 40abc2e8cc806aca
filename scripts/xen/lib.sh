# scripts/xen/lib.sh: settings and helpers shared by the Xen-in-QEMU
# harness scripts (sourced, bash).  Everything large lives in the cache;
# this directory holds only scripts.
#
# Cache layout ($XEN_CACHE):
#   stamps/NAME        hash of the inputs that produced artefact NAME
#   debs/              downloaded .debs (kernel, hypervisor, debootstrap's)
#   kernel/            dpkg -x of linux-image-$KVER (modules depmod'ed)
#   kver               the kernel ABI in use (e.g. 6.1.0-56-amd64)
#   xen.elf            Xen, gunzipped (QEMU's multiboot loader needs ELF)
#   guest/vmlinux      the same kernel as an ELF, for the domU builder
#   guest/domU-rootfs.cpio.gz   the glibc domU as one initramfs
#   guest/kmod/        Linux's pvcalls-back.ko / pvcalls-front.ko
#   rootfs-dom0/, rootfs-domU/  debootstrap trees
#   dom0-root.img, dom0-initrd.cpio.gz
# guest/ is exported read-only to dom0 (9p tag "xqc", mounted on /xqc).

set -o pipefail

XEN_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XEN_CACHE=${PVC_XEN_CACHE:-${HOME:-/root}/.cache/pvcalls-xen}
XEN_SUITE=bookworm
XEN_MIRROR=${PVC_XEN_MIRROR:-http://deb.debian.org/debian}
XEN_SECURITY_MIRROR=${PVC_XEN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
XEN_VERSION=4.17
STAMPS=$XEN_CACHE/stamps
GUEST=$XEN_CACHE/guest
XEN_ELF=$XEN_CACHE/xen.elf
DOM0_IMG=$XEN_CACHE/dom0-root.img
DOM0_INITRD=$XEN_CACHE/dom0-initrd.cpio.gz
DOMU_CPIO=$GUEST/domU-rootfs.cpio.gz
KMOD_DIR=$GUEST/kmod

xen_log() { echo "xen: $*" >&2; }
xen_die() { echo "xen: error: $*" >&2; exit 1; }

# Seconds since $1 (an EPOCHREALTIME), one decimal.
xen_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# The kernel ABI apt offers through the linux-image-amd64 metapackage
# (headers and modules must match it, so it is never hard-coded).
# PVC_XEN_KVER overrides.
xen_resolve_kver() {
    local k=${PVC_XEN_KVER:-}
    [ -n "$k" ] || k=$(apt-cache depends linux-image-amd64 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { sub("linux-image-", "", $2); print $2; exit }')
    [ -n "$k" ] || xen_die "apt offers no linux-image-amd64 (run scripts/xen/install-deps, which runs apt-get update)"
    echo "$k"
}

# The kernel ABI the cached artefacts were built for (after fetch).
xen_kver() {
    [ -s "$XEN_CACHE/kver" ] || xen_die "no kernel fetched yet (scripts/xen/fetch)"
    cat "$XEN_CACHE/kver"
}

# The version apt would install of package $1.
xen_pkg_version() { apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }'; }

# ---- stamps: rebuild an artefact only when what made it changed ------

# xen_hash ARG...: a hash of the arguments; an argument naming a file
# stands for the file's contents, any other for itself.
xen_hash() {
    local a
    for a in "$@"; do
        if [ -f "$a" ]; then printf 'file %s\n' "$(sha256sum <"$a")"
        else printf 'word %s\n' "$a"; fi
    done | sha256sum | cut -c1-32
}

# xen_fresh NAME HASH: is artefact NAME up to date with HASH?
xen_fresh() { [ "$(cat "$STAMPS/$1" 2>/dev/null)" = "$2" ]; }
xen_stamp() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }
xen_unstamp() { rm -f "$STAMPS/$1"; }
# The stamp of an artefact another one is made from (part of its inputs).
xen_stamp_of() { cat "$STAMPS/$1" 2>/dev/null || echo missing; }

# Package list file $1 as words (comments and blank lines dropped).
xen_packages() { sed -e 's/#.*//' "$1" | tr -s ' \t\n' '\n' | grep -v '^$'; }

# Removing a tree that might still have something mounted under it
# (a chroot's /proc) would reach into the host: refuse.
xen_rm_tree() {
    local dir=$1
    [ -e "$dir" ] || return 0
    dir=$(readlink -f "$dir")
    if awk -v d="$dir/" 'index($2 "/", d) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        xen_die "something is mounted under $dir: not removing it"
    fi
    rm -rf --one-file-system "$dir"
}

# xen_copy_modules DEST MODULE...: copy the fetched kernel's modules
# MODULE... and what they depend on into tree DEST (same paths under
# lib/modules/KVER); prints each copied module's path inside DEST, in
# load order.
xen_copy_modules() {
    local dest=$1 kdir=$XEN_CACHE/kernel kver ko rel
    kver=$(xen_kver)
    shift
    for m in "$@"; do
        modprobe -d "$kdir" -S "$kver" --show-depends "$m" ||
            xen_die "no module $m in $kdir"
    done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
        rel=${ko#"$kdir"}
        mkdir -p "$dest$(dirname "$rel")"
        cp "$ko" "$dest$rel"
        echo "$rel"
    done
}

# xen_cpio DIR: DIR as a gzip'd newc cpio on stdout ("." keeps DIR's mode:
# it becomes the mode of / when the cpio is an initramfs).
xen_cpio() { (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1); }
