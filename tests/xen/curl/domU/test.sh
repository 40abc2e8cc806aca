#!/bin/bash
# curl (domU, root, no vif, lo down): plain curl cannot reach dom0; the
# same curl under `pvcalls-run --isolate` (shim preloaded, own network
# namespace, pvcalls-frontd started on Xen by pvcalls-run) fetches the
# 20 MB file.  Its sha256 goes to /xq/out/sha256 for dom0 to compare.
. /xq/lib/payload-lib.sh
url=http://127.0.0.1:8080/blob

out=$(curl -sS -m 20 -o /dev/null "$url" 2>&1)
rc=$?
if [ $rc = 7 ]; then pass plain-curl-cannot-connect; else fail plain-curl-cannot-connect "rc $rc: $out"; fi

t0=$(uptime_s)
timeout 300 pvcalls-run --isolate -- curl -sS -m 240 -o /tmp/blob "$url" 2>&1
rc=$?
if [ $rc = 0 ]; then
    pass curl-under-pvcalls-run "$(stat -c %s /tmp/blob) bytes in $(since "$t0")s"
else
    fail curl-under-pvcalls-run "exit status $rc"
fi
[ -f /tmp/blob ] && sha256sum </tmp/blob | cut -d' ' -f1 >/xq/out/sha256
note "domU sha256 $(cat /xq/out/sha256 2>/dev/null)"
# what pvcalls-run's daemons said (pvcalls-frontd)
for log in /run/pvcalls/pvcalls-run/*.log; do
    show_tail "$log" 15
    cp "$log" /xq/out/
done
nseg=$(dmesg | grep -cE 'segfault at|general protection|traps:')
if [ "$nseg" = 0 ]; then pass domU-no-segfaults; else fail domU-no-segfaults "$(dmesg | grep -E 'segfault at|general protection|traps:' | head -n 3)"; fi
finish
