#!/bin/bash
# handshake (domU): start pvcalls-frontd, wait until its device is
# Connected, and tell dom0 through xenstore (data/pvc-test: "connected",
# or what went wrong).  Then wait: dom0 destroys this domain.
. /xq/lib/payload-lib.sh
domid=$(xenstore-read domid)
fe=/local/domain/$domid/device/pvcalls/0
report() { xenstore-write "/local/domain/$domid/data/pvc-test" "$1"; }

if ! start_ready frontd /dev/stdout pvcalls-frontd --platform xen; then
    report "frontd not ready"
    exec sleep infinity
fi
if xs_wait "$fe/state" 4 120; then
    pass frontend-connected
    report connected
else
    fail frontend-connected "state $(xenstore-read "$fe/state" 2>&1)"
    report "state $(xenstore-read "$fe/state" 2>&1)"
fi
exec sleep infinity
