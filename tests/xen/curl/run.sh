#!/bin/bash
# curl (dom0): a domU with no network (no vif, lo down) fetches a 20 MB
# random file from python3's http.server on dom0's 127.0.0.1:8080 with
# `pvcalls-run --isolate -- curl` (domU/test.sh): the sha256 of what
# arrived matches, and pvcalls-backd's audit log has the domU's CONNECT to
# 127.0.0.1:8080 and a socket that carried the whole file to the guest.
. /xq/lib/payload-lib.sh
audit=/run/pvcalls-audit.log
size=$((20 << 20))

mkdir -p /run/www
head -c "$size" /dev/urandom >/run/www/blob
want=$(sha256sum </run/www/blob | cut -d' ' -f1)
note "blob sha256 $want"
start_http /run/www 8080 /xq/out/httpd.log || { finish; exit; }
backd_start "$audit"
backd=$BACKD_PID

domu_stage curl
domu_run curl 400
drc=$?
d=$DOMID
if [ $drc = 0 ]; then pass domU-checks; else fail domU-checks "test.sh exited $drc"; fi
grep -h '^CHECK .* FAIL' /xq/out/domU-curl/test.log 2>/dev/null | sed 's/^/    domU: /'

got=$(cat /xq/out/domU-curl/sha256 2>/dev/null)
if [ "$got" = "$want" ]; then pass sha256-matches; else fail sha256-matches "domU got '${got:-nothing}', dom0 served $want"; fi
n=$(audit_count "$audit" dom="$d" cmd=connect addr=127.0.0.1:8080 ret=0)
if [ "$n" -ge 1 ]; then pass audit-connect "$n CONNECT to 127.0.0.1:8080 answered 0"; else fail audit-connect "no CONNECT to 127.0.0.1:8080 with ret 0 for dom $d"; fi
most=$(audit_max "$audit" bytes_in dom="$d" event=close)
if [ "$most" -ge "$size" ]; then pass audit-bytes "largest bytes_in $most >= $size"; else fail audit-bytes "largest bytes_in $most < $size"; fi
n=$(grep -c '"GET /blob HTTP/1.1" 200' /xq/out/httpd.log)
if [ "$n" = 1 ]; then pass server-served-blob; else fail server-served-blob "$n GET /blob answered 200"; fi

if kill -0 "$backd" 2>/dev/null; then pass backd-alive; else fail backd-alive "pvcalls-backd is gone"; fi
stop_daemon backd "$backd"
kill "$HTTP_PID" 2>/dev/null
cp "$audit" /xq/out/audit.log 2>/dev/null
if [ "$PVC_FAILS" != 0 ]; then
    show_tail /xq/out/backd.log 20
    show_tail /xq/out/audit.log 10
fi
finish
