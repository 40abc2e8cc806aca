#!/bin/bash
# linux-front (dom0): interoperability with Linux's own frontend.  The
# domU runs no daemon of ours: Linux's pvcalls-front (unmodified, from
# Debian's linux-source-6.1, linked with tests/kmod's selftest) connects
# to pvcalls-backd; both states reach 4.  Then its data path: the selftest
# (domU/test.sh) connects through it to dom0's echo server on 7000 and
# checks 1 MiB coming back; and it listens on 127.0.0.1:7001 through it,
# where dom0 connects, sends the selftest's pattern and checks the echo.
. /xq/lib/payload-lib.sh
audit=/run/pvcalls-audit.log

socat TCP-LISTEN:7000,bind=127.0.0.1,fork,reuseaddr EXEC:cat >/xq/out/socat.log 2>&1 &
backd_start "$audit"
backd=$BACKD_PID
domu_up lf
d=$DOMID
be=/local/domain/0/backend/pvcalls/$d/0
fe=/local/domain/$d/device/pvcalls/0
data=/local/domain/$d/data
if xs_wait "$fe/state" 4 300 && xs_wait "$be/state" 4 30; then
    pass linux-frontend-connected "frontend version=$(xenstore-read "$fe/version")"
else
    fail linux-frontend-connected "frontend $(xenstore-read "$fe/state" 2>&1), backend $(xenstore-read "$be/state" 2>&1)"
fi

# The selftest's server side: wait for its BIND and LISTEN, then be its client.
if wait_log "$audit" '"cmd":"bind".*"addr":"127.0.0.1:7001".*"ret":0' 300; then
    for i in $(seq 300); do ss -Hltn '( sport = :7001 )' | grep -q . && break; sleep 0.1; done
    if python3 - <<'PY'
import socket, sys
n = 1 << 20
pattern = bytes(((i * 7 + i // 251) & 0xff) for i in range(n))
s = socket.create_connection(("127.0.0.1", 7001), timeout=120)
s.sendall(pattern)
got = bytearray()
while len(got) < n:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
sys.exit(0 if bytes(got) == pattern else 1)
PY
    then pass dom0-client-to-linux-front-server "1 MiB echoed intact"
    else fail dom0-client-to-linux-front-server "echo differed or was cut short"
    fi
else
    fail dom0-client-to-linux-front-server "no BIND to 127.0.0.1:7001 audited"
fi

if domu_wait_gone lf 300; then :; else fail domU-powers-off "xl destroy"; xl destroy lf; fi
domu_collect lf
drc=$?
[ $drc = 0 ] && pass domU-checks || fail domU-checks "test.sh exited $drc"
grep -h '^CHECK\|selftest' /xq/out/domU-lf/test.log 2>/dev/null | sed 's/^/    domU: /'
n=$(audit_count "$audit" dom="$d" cmd=connect addr=127.0.0.1:7000 ret=0)
[ "$n" -ge 1 ] && pass audit-connect-7000 || fail audit-connect-7000 "$n CONNECT records"
most=$(audit_max "$audit" bytes_in dom="$d" event=close)
[ "$most" -ge $((1 << 20)) ] && pass audit-bytes "largest bytes_in $most" || fail audit-bytes "largest bytes_in $most"
n=$(audit_count "$audit" dom="$d" cmd=accept ret=0)
[ "$n" -ge 1 ] && pass audit-accept || fail audit-accept "$n ACCEPT answered 0"
if kill -0 "$backd" 2>/dev/null; then pass backd-alive; else fail backd-alive "pvcalls-backd is gone"; fi
stop_daemon backd "$backd"
pkill -f 'socat TCP-LISTEN:7000' 2>/dev/null
cp "$audit" /xq/out/audit.log 2>/dev/null
[ "$PVC_FAILS" != 0 ] && { show_tail /xq/out/backd.log 20; show_tail /xq/out/audit.log 15; }
finish
