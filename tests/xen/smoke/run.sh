#!/bin/bash
# smoke (dom0): Xen and dom0's toolstack are up; a PV domU with a PV Calls
# device (pvcalls = [ 'backend=0' ]) and no vif boots; in it (domU/test.sh)
# only lo exists, it is down, and plain curl cannot reach dom0's
# 127.0.0.1:8000, which dom0 itself reaches.  No project binary runs here.
. /xq/lib/payload-lib.sh

check xl-info sh -c 'xl info | grep -E "^(xen_version|total_memory|nr_cpus)"'
check xenstored-running pgrep -x xenstored
check xenconsoled-running pgrep -x xenconsoled
check dom0-devices ls /dev/xen/evtchn /dev/xen/gntdev /dev/xen/gntalloc /dev/xen/privcmd
# Linux's own drivers, for the interoperability payloads (not loaded here)
check linux-pvcalls-modules modinfo -F vermagic pvcalls-back pvcalls-front

# A server in dom0 that the domU must not reach without PV Calls.
mkdir -p /run/www
echo "hello from dom0" >/run/www/index.html
start_http /run/www 8000 /xq/out/httpd.log
check dom0-reaches-its-server curl -sS http://127.0.0.1:8000/index.html

domu_up smoke
be=/local/domain/0/backend/pvcalls/$DOMID/0
fe=/local/domain/$DOMID/device/pvcalls/0
if xs_is "$be/frontend" "$fe" && xs_is "$fe/backend" "$be" && xs_is "$fe/backend-id" 0; then
    pass pvcalls-device-created "$be <-> $fe"
else
    fail pvcalls-device-created "$(xenstore-ls -f /local/domain/0/backend 2>&1 | head -n 20)"
fi
nics=$(xl network-list smoke | tail -n +2)
if [ -z "$nics" ]; then pass no-vif; else fail no-vif "xl network-list: $nics"; fi

# Nobody serves the pvcalls backend here, so libxl waits 10 s for it
# when the domU powers off: allow for that.
domu_wait_gone smoke 240 || { fail domU-powers-off "still running after 240s"; xl destroy smoke; }
note "domU gone $(since "$DOMU_T0")s after xl create"
domu_collect smoke
drc=$?
if [ $drc = 0 ]; then pass domU-checks; else fail domU-checks "test.sh exited $drc"; fi
grep -h '^CHECK .* FAIL' /xq/out/domU-smoke/test.log 2>/dev/null | sed 's/^/    domU: /'

n=$(grep -c 'GET /index.html' /xq/out/httpd.log)
if [ "$n" = 1 ]; then pass server-saw-only-dom0; else fail server-saw-only-dom0 "$n GET requests (1 expected: dom0's own)"; fi
kill "$HTTP_PID"
nseg=$(dmesg | grep -cE 'segfault at|general protection|traps:')
if [ "$nseg" = 0 ]; then pass dom0-no-segfaults; else fail dom0-no-segfaults "$(dmesg | grep -E 'segfault at|general protection|traps:' | head -n 3)"; fi
finish
