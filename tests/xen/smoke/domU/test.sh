#!/bin/bash
# smoke (domU, root, no vif): the Xen devices are there, the PV Calls
# device points at dom0, only lo exists and is down, and plain curl to
# dom0's 127.0.0.1:8000 fails to connect.
. /xq/lib/payload-lib.sh

check xen-devices ls /dev/xen/xenbus /dev/xen/gntalloc /dev/xen/evtchn /dev/xen/gntdev
check linux-pvcalls-front-module modinfo -F vermagic pvcalls-front
domid=$(xenstore-read domid)
be_id=$(xenstore-read "/local/domain/$domid/device/pvcalls/0/backend-id" 2>&1)
if [ "$be_id" = 0 ]; then pass pvcalls-backend-is-dom0; else fail pvcalls-backend-is-dom0 "backend-id: $be_id"; fi

links=$(ip -o link)
echo "$links" | sed 's/^/    /'
if [ "$(echo "$links" | wc -l)" = 1 ] && echo "$links" | grep -q '^1: lo: <LOOPBACK>'; then
    pass only-lo-and-down
else
    fail only-lo-and-down "ip -o link: $links"
fi
routes=$(ip route; ip -6 route)
if [ -z "$routes" ]; then pass no-routes; else fail no-routes "$routes"; fi

out=$(curl -sS -m 20 http://127.0.0.1:8000/index.html 2>&1)
rc=$?
if [ $rc = 7 ]; then pass curl-cannot-connect "rc 7: $out"; else fail curl-cannot-connect "rc $rc: $out"; fi
nseg=$(dmesg | grep -cE 'segfault at|general protection|traps:')
if [ "$nseg" = 0 ]; then pass domU-no-segfaults; else fail domU-no-segfaults "$(dmesg | grep -E 'segfault at|general protection|traps:' | head -n 3)"; fi
finish
