#!/bin/bash
# lifecycle (domU): three programs under the shim holding connections to
# dom0's echo server (hold.py), for dom0 (../run.sh) to
#  A) have SIGKILLed: dom0 checks their sockets are released;
#  B) see the backend restarted: every blocked recv() ends in ECONNRESET,
#     and a new connection works once the device is Connected again;
#  C) hold sockets (and a listener) while dom0 runs `xl destroy`.
. /xq/lib/payload-lib.sh
domid=$(xenstore-read domid)
data=/local/domain/$domid/data
fe=/local/domain/$domid/device/pvcalls/0
tell() { xenstore-write "$data/$1" "$2"; }
hold() { pvcalls-run --isolate -- python3 -u /xq/in/hold.py "$@"; }

if ! start_ready frontd /tmp/frontd.log pvcalls-frontd --platform xen; then
    tell phase "frontd not ready"; finish; exit
fi

# A: 20 connections, then SIGKILL (dom0 says when).
hold 127.0.0.1 9100 20 >/tmp/holdA.log 2>&1 &
a=$!
if wait_log /tmp/holdA.log '^ready 20' 120; then
    tell phase A-ready
    xs_wait "$data/go" kill-A 300
    # The python3 process itself (pvcalls-run's command line names
    # hold.py too).
    victim=$(pgrep -f '^python3 -u /xq/in/hold.py 127.0.0.1 9100 20$' | head -n 1)
    # Both domains read Xen's wall clock (PV time), so dom0 can compare
    # this instant with its audit records.
    killed_at=$(date +%s.%N)
    kill -KILL "$victim"
    tell killed-at "$killed_at"
    tell phase A-killed
    wait "$a" 2>/dev/null
    pass holder-A-killed
else
    fail holder-A-ready "$(tail -n 5 /tmp/holdA.log)"
    tell phase A-failed
fi

# B: 5 connections waiting in recv while dom0 restarts the backend.
hold 127.0.0.1 9100 5 >/tmp/holdB.log 2>&1 &
b=$!
if wait_log /tmp/holdB.log '^ready 5' 120; then
    tell phase B-ready
    timeout 300 tail --pid="$b" -f /dev/null
    wait "$b"
    n=$(grep -c '^conn [0-9]* ECONNRESET$' /tmp/holdB.log)
    if [ "$n" = 5 ]; then pass recv-sees-ECONNRESET "5 of 5"; else fail recv-sees-ECONNRESET "$(grep '^conn' /tmp/holdB.log | tr '\n' ' ')"; fi
    # dom0 restarted the backend: a new connection once we are Connected.
    xs_wait "$data/go" backend-restarted 300
    if xs_wait "$fe/state" 4 120; then pass device-reconnected; else fail device-reconnected "state $(xenstore-read "$fe/state")"; fi
    out=$(timeout 120 pvcalls-run --isolate -- curl -sS -m 60 http://127.0.0.1:8080/small 2>&1)
    if [ "$out" = "after the restart" ]; then pass new-connection-after-restart; else fail new-connection-after-restart "got: $out"; fi
else
    fail holder-B-ready "$(tail -n 5 /tmp/holdB.log)"
fi
cp /tmp/holdA.log /tmp/holdB.log /xq/out/ 2>/dev/null
tell phase B-done

# C: 10 connections and a listener, until dom0 destroys this domain.  The
# checks so far are reported first (dom0 reads them from the console).
hold 127.0.0.1 9100 10 9200 >/tmp/holdC.log 2>&1 &
if wait_log /tmp/holdC.log '^ready 10' 120; then
    tell phase C-ready
else
    fail holder-C-ready "$(tail -n 5 /tmp/holdC.log)"
    tell phase C-failed
fi
finish
tell result "$PVC_FAILS"
exec sleep infinity
