#!/bin/bash
# linux-back (domU): our guest daemon and shim against Linux's
# pvcalls-back.ko in dom0 (see ../run.sh).  The domain's name says which
# module serves it: lb-debian (Debian's, with the masked event channel
# bug) or lb-fixed.
. /xq/lib/payload-lib.sh
name=$(xenstore-read name)
if ! start_ready frontd /tmp/frontd.log pvcalls-frontd --platform xen; then
    finish; exit
fi

# fetch NAME SECONDS: curl under the shim gets /NAME from dom0's server
# into /tmp/NAME; its sha256 goes to /xq/out/sha256-NAME.  curl's status.
fetch() {
    local rc
    timeout $(($2 + 30)) pvcalls-run --isolate -- \
        curl -sS -m "$2" -o "/tmp/$1" "http://127.0.0.1:8080/$1" 2>"/tmp/curl-$1.err"
    rc=$?
    [ -f "/tmp/$1" ] && sha256sum <"/tmp/$1" | cut -d' ' -f1 >"/xq/out/sha256-$1"
    return $rc
}

t0=$(uptime_s)
if [ "$name" = lb-debian ]; then
    fetch small 60 && pass curl-small "$(stat -c %s /tmp/small) bytes in $(since "$t0")s" ||
        fail curl-small "$(cat /tmp/curl-small.err)"
    # The bug stalls the transfer once the ring and the host socket's
    # window are both full: how far it got is reported, not checked.
    t0=$(uptime_s)
    if fetch blob 20; then
        echo "all $(stat -c %s /tmp/blob) bytes in $(since "$t0")s" >/xq/out/big-result
    else
        echo "stalled: $(tail -n 1 /tmp/curl-blob.err)" >/xq/out/big-result
    fi
else
    fetch blob 240 && pass curl-4MB "$(stat -c %s /tmp/blob) bytes in $(since "$t0")s" ||
        fail curl-4MB "$(cat /tmp/curl-blob.err)"
fi
grep -E 'max-page-order|extension|version' /tmp/frontd.log | head -n 3 | sed 's/^/    frontd: /'
cp /tmp/frontd.log /xq/out/ 2>/dev/null
finish
