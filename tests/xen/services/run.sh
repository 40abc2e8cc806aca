#!/bin/bash
# services (dom0): what a guest's programs do through the shim, beyond a
# download (domU/test.sh is the other half):
#  - a server in the domU under the shim (python3's http.server, bound to
#    127.0.0.1:8081 through PV Calls, so listening in dom0) is reached by
#    curl in dom0: the file's sha256 matches the one the domU reported;
#  - nc both ways, each side sending a file and half-closing (-N), each
#    receiving the other's file to EOF: once with the domU as client
#    (dom0's nc -l on 9001), once as server (domU's nc -l on 9002);
#  - the domU's native-vs-shim probes (errno, bad input, non-blocking)
#    agree (checked in the domU), and the audit log shows their refused
#    CONNECT and failed BIND.
# The domU and dom0 meet through the domU's xenstore data/ directory.
. /xq/lib/payload-lib.sh
audit=/run/pvcalls-audit.log
sha() { sha256sum <"$1" | cut -d' ' -f1; }

# dom0's side of the nc exchange with the domU as client.
head -c $((3 << 20)) /dev/urandom >/run/dom0-sends-9001
timeout 300 nc -N -l 127.0.0.1 9001 </run/dom0-sends-9001 >/run/dom0-got-9001 2>/run/nc9001.err &
nc9001=$!
backd_start "$audit"
backd=$BACKD_PID

domu_up svc
d=$DOMID
data=/local/domain/$d/data
xread() { xenstore-read "$data/$1" 2>/dev/null; }

# 1. The domU's nc client has run against dom0's listener.
if xs_wait "$data/nc-client" done 300; then
    wait "$nc9001"
    if [ "$(sha /run/dom0-got-9001)" = "$(xread nc-client-sent)" ]; then
        pass nc-domU-client-to-dom0 "$(stat -c %s /run/dom0-got-9001) bytes, sha256 matches"
    else
        fail nc-domU-client-to-dom0 "dom0 got sha $(sha /run/dom0-got-9001), domU sent $(xread nc-client-sent)"
    fi
    if [ "$(xread nc-client-got)" = "$(sha /run/dom0-sends-9001)" ]; then
        pass nc-dom0-to-domU-client
    else
        fail nc-dom0-to-domU-client "domU got sha $(xread nc-client-got), dom0 sent $(sha /run/dom0-sends-9001)"
    fi
else
    fail nc-domU-client "domU said: $(xread nc-client)"
fi

# 2. The domU's http server: reached from dom0.
if xs_wait "$data/http" listening 120; then
    if curl -sS -m 120 -o /run/guest-file http://127.0.0.1:8081/guest-file; then
        if [ "$(sha /run/guest-file)" = "$(xread http-sha)" ]; then
            pass dom0-reaches-domU-server "$(stat -c %s /run/guest-file) bytes, sha256 matches"
        else
            fail dom0-reaches-domU-server "sha $(sha /run/guest-file), domU has $(xread http-sha)"
        fi
    else
        fail dom0-reaches-domU-server "curl failed"
    fi
else
    fail dom0-reaches-domU-server "domU said: $(xread http)"
fi
xenstore-write "$data/http-fetched" 1

# 3. The domU's nc server.
head -c $((3 << 20)) /dev/urandom >/run/dom0-sends-9002
# The domU's listener is dom0's socket: wait for its BIND in the audit
# log, then for the LISTEN that follows it (ss).
listening_9002() { ss -Hltn 'sport = :9002' | grep -q .; }
wait_listen_9002() {
    wait_log "$audit" '"cmd":"bind".*"addr":"127.0.0.1:9002".*"ret":0' 120 || return 1
    local i
    for i in $(seq 300); do listening_9002 && return 0; sleep 0.1; done
    return 1
}
if wait_listen_9002; then
    if timeout 120 nc -N 127.0.0.1 9002 </run/dom0-sends-9002 >/run/dom0-got-9002; then
        pass nc-dom0-client-exits
    else
        fail nc-dom0-client-exits "nc to the domU's server failed"
    fi
    xenstore-write "$data/nc-server-dom0-sent" "$(sha /run/dom0-sends-9002)"
    if xs_wait "$data/nc-server" done 120; then
        [ "$(xread nc-server-got)" = "$(sha /run/dom0-sends-9002)" ] &&
            pass nc-dom0-to-domU-server ||
            fail nc-dom0-to-domU-server "domU got sha $(xread nc-server-got)"
        [ "$(sha /run/dom0-got-9002)" = "$(xread nc-server-sent)" ] &&
            pass nc-domU-server-to-dom0 "$(stat -c %s /run/dom0-got-9002) bytes" ||
            fail nc-domU-server-to-dom0 "dom0 got sha $(sha /run/dom0-got-9002), domU sent $(xread nc-server-sent)"
    else
        fail nc-domU-server "domU said: $(xread nc-server)"
    fi
else
    fail nc-domU-server "domU said: $(xread nc-server)"
fi

# 4. The probes (compared in the domU); then the domU powers off.
if domu_wait_gone svc 400; then :; else fail domU-powers-off "xl destroy"; xl destroy svc; fi
domu_collect svc
drc=$?
if [ $drc = 0 ]; then pass domU-checks; else fail domU-checks "test.sh exited $drc"; fi
grep -h '^CHECK .* FAIL' /xq/out/domU-svc/test.log 2>/dev/null | sed 's/^/    domU: /'

n=$(audit_count "$audit" dom="$d" cmd=bind addr=127.0.0.1:8081 ret=0)
[ "$n" -ge 1 ] && pass audit-bind-8081 || fail audit-bind-8081 "$n BIND records"
n=$(audit_count "$audit" dom="$d" cmd=listen ret=0)
[ "$n" -ge 2 ] && pass audit-listens "$n" || fail audit-listens "$n LISTEN answered 0"
n=$(audit_count "$audit" dom="$d" cmd=connect err=ECONNREFUSED)
[ "$n" -ge 1 ] && pass audit-connect-refused "$n" || fail audit-connect-refused "no refused CONNECT audited"
n=$(audit_count "$audit" dom="$d" cmd=bind err=EADDRINUSE)
[ "$n" -ge 1 ] && pass audit-bind-in-use "$n" || fail audit-bind-in-use "no EADDRINUSE BIND audited"
n=$(audit_count "$audit" dom="$d" cmd=accept ret=0)
[ "$n" -ge 2 ] && pass audit-accepts "$n" || fail audit-accepts "$n ACCEPT answered 0"

if kill -0 "$backd" 2>/dev/null; then pass backd-alive; else fail backd-alive "pvcalls-backd is gone"; fi
stop_daemon backd "$backd"
cp "$audit" /xq/out/audit.log 2>/dev/null
if [ "$PVC_FAILS" != 0 ]; then
    show_tail /xq/out/backd.log 20
    show_tail /xq/out/audit.log 10
fi
finish
