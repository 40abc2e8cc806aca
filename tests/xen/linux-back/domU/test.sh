#!/bin/bash
# linux-back (domU): our guest daemon and shim against Linux's
# pvcalls-back.ko in dom0 (see ../run.sh).
. /xq/lib/payload-lib.sh
if ! start_ready frontd /tmp/frontd.log pvcalls-frontd --platform xen; then
    finish; exit
fi
t0=$(uptime_s)
if timeout 300 pvcalls-run --isolate -- curl -sS -m 240 -o /tmp/blob http://127.0.0.1:8080/blob; then
    pass curl-through-linux-backend "$(stat -c %s /tmp/blob) bytes in $(since "$t0")s"
else
    fail curl-through-linux-backend "curl failed"
fi
[ -f /tmp/blob ] && sha256sum </tmp/blob | cut -d' ' -f1 >/xq/out/sha256
grep -E 'max-page-order|order|extension|version' /tmp/frontd.log | head -n 5 | sed 's/^/    frontd: /'
cp /tmp/frontd.log /xq/out/ 2>/dev/null
finish
