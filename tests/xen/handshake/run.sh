#!/bin/bash
# handshake (dom0): pvcalls-backd serves the PV Calls device of a domU
# whose pvcalls-frontd (domU/test.sh) connects it: both xenstore states
# reach 4 (Connected).  Then `xl destroy` of the domU: the backend
# directory disappears (so the backend answered Closing with Closed, or
# libxl would have waited 10 s and left it), pvcalls-backd stays up, and
# its audit log holds the device's connect and disconnect; SIGTERM stops
# it with status 0.
. /xq/lib/payload-lib.sh
audit=/run/pvcalls-audit.log

backd_start "$audit"
backd=$BACKD_PID

domu_up hs
d=$DOMID
be=/local/domain/0/backend/pvcalls/$d/0
fe=/local/domain/$d/device/pvcalls/0

# The domU boots (10-20 s under TCG), starts pvcalls-frontd and connects.
if xs_wait "$fe/state" 4 180 && xs_wait "$be/state" 4 30; then
    pass both-states-connected "frontend and backend state 4, $(since "$DOMU_T0")s after xl create"
else
    fail both-states-connected "frontend state $(xenstore-read "$fe/state" 2>&1), backend state $(xenstore-read "$be/state" 2>&1)"
fi
echo "    backend:  $(xenstore-ls "$be" 2>&1 | tr '\n' ' ')"
echo "    frontend: $(xenstore-ls "$fe" 2>&1 | tr '\n' ' ')"
# The domU's own view (test.sh writes it once frontd is ready and its
# device is connected).
if xs_until 60 "/local/domain/$d/data/pvc-test" xs_is "/local/domain/$d/data/pvc-test" connected; then
    pass domU-frontd-connected
else
    fail domU-frontd-connected "domU reported: $(xenstore-read "/local/domain/$d/data/pvc-test" 2>&1)"
fi
n=$(audit_count "$audit" dom="$d" event=device-connect)
if [ "$n" = 1 ]; then pass audit-device-connect; else fail audit-device-connect "$n device-connect records for dom $d"; fi

t0=$(uptime_s)
if xl destroy hs; then pass xl-destroy "$(since "$t0")s"; else fail xl-destroy "xl destroy hs failed"; fi
if xs_wait_gone "/local/domain/0/backend/pvcalls/$d" 30; then
    pass backend-dir-removed "$(since "$t0")s after xl destroy"
else
    fail backend-dir-removed "$(xenstore-ls -f "/local/domain/0/backend/pvcalls/$d" 2>&1 | head -n 10)"
fi
if xs_absent "/local/domain/$d"; then pass domain-dir-removed; else fail domain-dir-removed "/local/domain/$d still there"; fi
domu_collect hs
grep -a 'pvcalls\|frontd' /xq/out/domU-hs/console.log | grep -v '^U| CHECK' | tail -n 5 | sed 's/^/    domU: /'

if kill -0 "$backd" 2>/dev/null; then pass backd-survives-destroy; else fail backd-survives-destroy "pvcalls-backd is gone"; fi
n=$(audit_count "$audit" dom="$d" event=device-disconnect)
if [ "$n" = 1 ]; then pass audit-device-disconnect; else fail audit-device-disconnect "$n device-disconnect records for dom $d"; fi
stop_daemon backd "$backd"
cp "$audit" /xq/out/audit.log 2>/dev/null
show_tail /xq/out/backd.log 15
show_tail /xq/out/audit.log 10
finish
