#!/bin/bash
# linux-back (dom0): interoperability with Linux's own backend.  Linux's
# pvcalls-back.ko (built from Debian's linux-source-6.1 for the stock
# kernel) serves the domU, not pvcalls-backd; the domU's pvcalls-frontd
# and shim (domU/test.sh) speak plain PV Calls v1 to it (Linux has none of
# our extensions, and a max-page-order of 4).  Two domUs, one after the
# other:
#   lb-debian  the module exactly as Debian's source builds it: a 24 KiB
#              file (less than one 32 KiB ring) arrives whole; a 4 MB one
#              is tried and how far it got is a NOTE: this module has the
#              bug Linux fixed in c70b7741dda7 (an event channel left
#              masked), see tests/kmod/pvcalls-back-masked-evtchn.patch
#   lb-fixed   the same source with that fix: the 4 MB file arrives, sha256
#              matches.
# No audit log here: Linux keeps none; dom0's http.server log is checked.
. /xq/lib/payload-lib.sh
sha() { sha256sum <"$1" | cut -d' ' -f1; }

# linux_back_domu NAME: one domU against the loaded pvcalls-back: the
# handshake reaches Connected, test.sh's checks pass, the backend's
# nodes go when the domU does.  Its results land in /xq/out/domU-NAME/.
linux_back_domu() {
    local name=$1 d be
    domu_stage "$name"
    domu_start "$name" || { xl destroy "$name" 2>/dev/null; return 1; }
    d=$DOMID
    be=/local/domain/0/backend/pvcalls/$d/0
    if xs_wait "$be/state" 4 300; then
        pass "$name-backend-connected" "versions=$(xenstore-read "$be/versions") max-page-order=$(xenstore-read "$be/max-page-order")"
    else
        fail "$name-backend-connected" "backend state $(xenstore-read "$be/state" 2>&1)"
    fi
    if ! domu_wait_gone "$name" 400; then
        fail "$name-powers-off" "still running: xl destroy"
        xl destroy "$name"
    fi
    domu_collect "$name"
    local drc=$?
    [ $drc = 0 ] && pass "$name-checks" || fail "$name-checks" "test.sh exited $drc"
    grep -h '^CHECK .* FAIL' "/xq/out/domU-$name/test.log" 2>/dev/null | sed 's/^/    domU: /'
    xs_wait_gone "/local/domain/0/backend/pvcalls/$d" 30 && pass "$name-backend-nodes-gone" ||
        fail "$name-backend-nodes-gone" "the Linux backend left $be"
}

# got_file NAME FILE: the domU's copy of FILE has FILE's sha256.
got_file() {
    local got
    got=$(cat "/xq/out/domU-$1/sha256-$(basename "$2")" 2>/dev/null)
    [ "$got" = "$(sha "$2")" ] && pass "$1-sha256-$(basename "$2")" ||
        fail "$1-sha256-$(basename "$2")" "domU got '${got:-nothing}'"
}

mkdir -p /run/www
head -c $((24 << 10)) /dev/urandom >/run/www/small
head -c $((4 << 20)) /dev/urandom >/run/www/blob
start_http /run/www 8080 /xq/out/httpd.log || { finish; exit; }

if modprobe pvcalls-back; then
    pass debian-pvcalls-back-loaded "$(modinfo -F vermagic pvcalls-back)"
    linux_back_domu lb-debian
    got_file lb-debian /run/www/small
    note "Debian's pvcalls-back, 4 MB: $(cat /xq/out/domU-lb-debian/big-result 2>/dev/null || echo 'no result')"
    rmmod pvcalls_back || fail debian-pvcalls-back-unloaded "rmmod pvcalls_back"
else
    fail debian-pvcalls-back-loaded "modprobe pvcalls-back failed"
fi

fixed=/usr/local/lib/pvcalls-test/pvcalls-back-fixed.ko
if insmod "$fixed"; then
    pass fixed-pvcalls-back-loaded "$(modinfo -F vermagic "$fixed")"
    linux_back_domu lb-fixed
    got_file lb-fixed /run/www/blob
else
    fail fixed-pvcalls-back-loaded "insmod $fixed failed"
fi

n=$(grep -c '"GET /small HTTP/1.1" 200' /xq/out/httpd.log)
[ "$n" = 1 ] && pass small-served-by-dom0 || fail small-served-by-dom0 "$n GET /small answered 200"
kill "$HTTP_PID" 2>/dev/null
dmesg | grep -i pvcalls | tail -n 5 | sed 's/^/    dmesg: /'
finish
