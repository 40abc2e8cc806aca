#!/bin/bash
# linux-front (domU): Linux's pvcalls-front with the selftest (no daemon
# of ours here); see ../run.sh.
. /xq/lib/payload-lib.sh
domid=$(xenstore-read domid)
fe=/local/domain/$domid/device/pvcalls/0
mod=/sys/module/pvcalls_front_selftest/parameters
if insmod /xq/in/pvcalls-front-selftest.ko; then pass insmod; else fail insmod "$(dmesg | tail -n 3)"; finish; exit; fi
if xs_wait "$fe/state" 4 120; then pass frontend-connected; else fail frontend-connected "state $(xenstore-read "$fe/state")"; finish; exit; fi
selftest() {
    local name=$1 req=$2
    if timeout 300 sh -c "echo '$req' > $mod/run"; then
        pass "$name" "$(cat $mod/result)"
    else
        fail "$name" "$(cat $mod/result)"
    fi
}
selftest linux-front-client-echo 'echo 127.0.0.1 7000 1048576'
selftest linux-front-server 'serve 127.0.0.1 7001 1048576'
dmesg | grep -i pvcalls | tail -n 5 | sed 's/^/    dmesg: /'
finish
