#!/bin/bash
# services (domU): see ../run.sh.  All traffic goes through
# `pvcalls-run --isolate` (own network namespace, lo down; the domU has no
# vif anyway) and one pvcalls-frontd started here.
. /xq/lib/payload-lib.sh
domid=$(xenstore-read domid)
data=/local/domain/$domid/data
tell() { xenstore-write "$data/$1" "$2"; }
sha() { sha256sum <"$1" | cut -d' ' -f1; }
probes=/usr/local/libexec/pvcalls-tests
run() { pvcalls-run --isolate -- "$@"; }

if ! start_ready frontd /tmp/frontd.log pvcalls-frontd --platform xen; then
    tell nc-client "frontd not ready"; tell http "frontd not ready"; tell nc-server "frontd not ready"
    finish; exit
fi

# 1. nc client to dom0's listener, both sides sending and half-closing.
head -c $((2 << 20)) /dev/urandom >/tmp/sends-9001
tell nc-client-sent "$(sha /tmp/sends-9001)"
if timeout 120 pvcalls-run --isolate -- nc -N 127.0.0.1 9001 </tmp/sends-9001 >/tmp/got-9001; then
    pass nc-client-exits
else
    fail nc-client-exits "nc -N 127.0.0.1 9001 failed"
fi
tell nc-client-got "$(sha /tmp/got-9001)"
tell nc-client done

# 2. A server under the shim, reached from dom0.
mkdir -p /tmp/www
head -c $((4 << 20)) /dev/urandom >/tmp/www/guest-file
tell http-sha "$(sha /tmp/www/guest-file)"
run python3 -u -m http.server 8081 --bind 127.0.0.1 --directory /tmp/www >/tmp/http.log 2>&1 &
http=$!
if wait_log /tmp/http.log '^Serving HTTP' 60; then
    tell http listening
    xs_wait "$data/http-fetched" 1 300 || fail http-fetched "dom0 never said it fetched"
    grep -q '"GET /guest-file HTTP/1.1" 200' /tmp/http.log && pass http-served ||
        fail http-served "$(tail -n 3 /tmp/http.log)"
else
    tell http "no Serving line"
    fail http-listening "$(tail -n 5 /tmp/http.log)"
fi
kill "$http" 2>/dev/null; wait "$http" 2>/dev/null

# 3. nc server: dom0 connects, both send and half-close.  nc says nothing
# when it listens; dom0 sees the LISTEN itself (audit log, then ss).
head -c $((2 << 20)) /dev/urandom >/tmp/sends-9002
tell nc-server-sent "$(sha /tmp/sends-9002)"
timeout 300 pvcalls-run --isolate -- nc -N -l 127.0.0.1 9002 </tmp/sends-9002 >/tmp/got-9002 &
ncs=$!
tell nc-server started
if wait "$ncs"; then pass nc-server-exits; else fail nc-server-exits "nc -l exited non-zero"; fi
tell nc-server-got "$(sha /tmp/got-9002)"
tell nc-server done

# 4. The probes: natively in a private network namespace with its own lo
# (the comparison the simulated platform's test_run_errno makes), then
# under the shim.
native() { unshare --net sh -c 'ip link set lo up && exec "$@"' sh "$@"; }
for p in errno_probe badinput_probe nonblock_probe; do
    native "$probes/$p" >/tmp/$p.native 2>&1
    run "$probes/$p" >/tmp/$p.shim 2>&1
    if ! grep -q '^done$' /tmp/$p.native; then
        fail "$p-native" "incomplete: $(tail -n 3 /tmp/$p.native)"
    elif cmp -s /tmp/$p.native /tmp/$p.shim; then
        pass "$p-native-vs-shim" "$(wc -l </tmp/$p.native) lines identical"
    else
        fail "$p-native-vs-shim" "$(diff /tmp/$p.native /tmp/$p.shim | head -n 10 | tr '\n' '|')"
    fi
    cp /tmp/$p.native /tmp/$p.shim /xq/out/ 2>/dev/null
done
cp /tmp/frontd.log /xq/out/ 2>/dev/null
finish
