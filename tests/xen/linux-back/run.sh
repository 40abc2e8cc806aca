#!/bin/bash
# linux-back (dom0): interoperability with Linux's own backend.  Linux's
# pvcalls-back.ko (built from Debian's linux-source-6.1 for the stock
# kernel) serves the domU, not pvcalls-backd; the domU's pvcalls-frontd
# and shim (domU/test.sh) speak plain PV Calls v1 to it (Linux has none of
# our extensions, and a max-page-order of 4): curl fetches a 4 MB file
# from dom0 and the sha256 matches.  No audit log here: Linux keeps none.
. /xq/lib/payload-lib.sh
sha() { sha256sum <"$1" | cut -d' ' -f1; }

mkdir -p /run/www
head -c $((4 << 20)) /dev/urandom >/run/www/blob
start_http /run/www 8080 /xq/out/httpd.log || { finish; exit; }
if modprobe pvcalls-back; then
    pass linux-pvcalls-back-loaded "$(modinfo -F vermagic pvcalls-back)"
else
    fail linux-pvcalls-back-loaded "modprobe pvcalls-back failed"; finish; exit
fi

domu_prepare || { fail domU-prepare "staging the domU failed"; finish; exit; }
domu_config lb "pvcalls = [ 'backend=0' ]" >/run/xq/lb.cfg
domu_start lb || { finish; exit; }
d=$DOMID
be=/local/domain/0/backend/pvcalls/$d/0
if xs_wait "$be/state" 4 300; then
    pass linux-backend-connected "versions=$(xenstore-read "$be/versions") max-page-order=$(xenstore-read "$be/max-page-order")"
else
    fail linux-backend-connected "backend state $(xenstore-read "$be/state" 2>&1)"
fi
if domu_wait_gone lb 400; then :; else fail domU-powers-off "xl destroy"; xl destroy lb; fi
domu_collect lb
drc=$?
[ $drc = 0 ] && pass domU-checks || fail domU-checks "test.sh exited $drc"
grep -h '^CHECK .* FAIL' /xq/out/domU-lb/test.log 2>/dev/null | sed 's/^/    domU: /'
got=$(cat /xq/out/domU-lb/sha256 2>/dev/null)
[ "$got" = "$(sha /run/www/blob)" ] && pass sha256-matches ||
    fail sha256-matches "domU got '${got:-nothing}'"
n=$(grep -c '"GET /blob HTTP/1.1" 200' /xq/out/httpd.log)
[ "$n" = 1 ] && pass served-by-dom0 || fail served-by-dom0 "$n GET /blob answered 200"
xs_wait_gone "/local/domain/0/backend/pvcalls/$d" 30 && pass backend-nodes-gone ||
    fail backend-nodes-gone "the Linux backend left $be"
kill "$HTTP_PID" 2>/dev/null
dmesg | grep -i pvcalls | tail -n 5 | sed 's/^/    dmesg: /'
finish
