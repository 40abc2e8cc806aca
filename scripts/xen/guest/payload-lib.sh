# payload-lib.sh: helpers for the payloads' scripts, in dom0 (run.sh,
# /xq/lib/payload-lib.sh) and in the domU (test.sh, same path).  Bash.
#
# Checks:     pass NAME [DETAIL] / fail NAME DETAIL  -> "CHECK NAME PASS|FAIL"
#             check NAME CMD...   runs CMD (bounded by CHECK_TIMEOUT, 60 s)
#             finish              prints "RESULT PASS|FAIL (n failed)", returns
#                                 the number of failed checks
# Waits (real waits on xenstore watches, bounded):
#             xs_wait PATH VALUE SECONDS    until PATH reads VALUE
#             xs_wait_gone PATH SECONDS     until PATH does not exist
# Daemons:    start_ready NAME LOG CMD...   starts CMD --ready-fd 3 and waits
#             for its "ready" line; sets READY_PID
#             stop_daemon NAME PID          SIGTERM, PASS if it exits 0
#             start_http DIR PORT LOG       python3 http.server, 127.0.0.1
#             wait_log FILE REGEX SECONDS   until a line of FILE matches
# Audit log (dom0): audit_count FILE K=V...  records matching all K=V
#             audit_max FILE KEY K=V...      largest KEY among them
# The backend (dom0): backd_start AUDIT [OPTION...]  sets BACKD_PID
# The domU (dom0):  domu_up, domu_stage, domu_prepare, domu_config,
#             domu_start, domu_wait_gone, domu_collect, domu_run: see each
#             function.

PVC_FAILS=0
CHECK_TIMEOUT=${CHECK_TIMEOUT:-60}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

uptime_s() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'; }
note() { echo "NOTE $*"; }
pass() { echo "CHECK $1 PASS${2:+: $2}"; }
fail() { echo "CHECK $1 FAIL: $2"; PVC_FAILS=$((PVC_FAILS + 1)); }

# check NAME CMD...: PASS if CMD exits 0; its output is shown either way.
check() {
    local name=$1 out rc
    shift
    out=$(timeout "$CHECK_TIMEOUT" "$@" 2>&1)
    rc=$?
    if [ $rc = 0 ]; then pass "$name"; else fail "$name" "'$*' exited $rc"; fi
    [ -n "$out" ] && printf '%s\n' "$out" | head -n 20 | sed 's/^/    /'
    return $rc
}

finish() {
    if [ "$PVC_FAILS" = 0 ]; then echo "RESULT PASS"; else echo "RESULT FAIL ($PVC_FAILS failed)"; fi
    return "$PVC_FAILS"
}

# Show the last lines of a log, indented, under a title.
show_tail() {
    local file=$1 n=${2:-30}
    echo "---- $file (last $n lines) ----"
    tail -n "$n" "$file" 2>/dev/null | sed 's/^/    /'
}

# xs_until SECONDS PATH TEST...: wait on a watch of PATH until TEST...
# succeeds (run at once, then at every event).  0 if it did in time.
xs_until() {
    local secs=$1 path=$2 fd pid rc=1
    shift 2
    "$@" && return 0
    exec {fd}< <(exec timeout "$secs" xenstore-watch "$path" 2>/dev/null)
    pid=$!
    while read -r -u "$fd" _; do
        "$@" && { rc=0; break; }
    done
    kill "$pid" 2>/dev/null
    exec {fd}<&-
    [ $rc = 0 ] || "$@"
}
xs_is() { [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ]; }
xs_absent() { ! xenstore-read "$1" >/dev/null 2>&1; }
xs_wait() { xs_until "$3" "$1" xs_is "$1" "$2"; }
xs_wait_gone() { xs_until "$2" "$1" xs_absent "$1"; }

# wait_log FILE PATTERN SECONDS: wait until a line of FILE (which may
# not exist yet) matches PATTERN (grep -E); 0 if one did in time.
wait_log() {
    local file=$1 pattern=$2 secs=$3 fd pid rc
    exec {fd}< <(exec timeout "$secs" tail -n +1 -F "$file" 2>/dev/null)
    pid=$!
    grep -E -m 1 -q -- "$pattern" <&"$fd"
    rc=$?
    kill "$pid" 2>/dev/null
    exec {fd}<&-
    return $rc
}

# start_http DIR PORT LOG: python3's http.server on 127.0.0.1:PORT serving
# DIR, waiting for its "Serving HTTP" line (printed once it listens);
# sets HTTP_PID.
start_http() {
    python3 -u -m http.server "$2" --bind 127.0.0.1 --directory "$1" >"$3" 2>&1 &
    HTTP_PID=$!
    if wait_log "$3" '^Serving HTTP' 60; then
        pass "http-server-$2-listening"
    else
        fail "http-server-$2-listening" "no 'Serving HTTP' line in 60s"
        show_tail "$3"
        return 1
    fi
}

# start_ready NAME LOG CMD...: start CMD --ready-fd 3, its output in LOG,
# and wait (up to READY_TIMEOUT, 30 s) for it to write "ready".
start_ready() {
    local name=$1 log=$2 fifo line
    shift 2
    fifo=$(mktemp -u /run/ready.XXXXXX)
    mkfifo -m 600 "$fifo"
    "$@" --ready-fd 3 3>"$fifo" </dev/null >>"$log" 2>&1 &
    READY_PID=$!
    if read -r -t "${READY_TIMEOUT:-30}" line <"$fifo" && [ "$line" = ready ]; then
        rm -f "$fifo"
        pass "$name-ready" "pid $READY_PID"
        return 0
    fi
    rm -f "$fifo"
    fail "$name-ready" "no \"ready\" from $* within ${READY_TIMEOUT:-30}s"
    show_tail "$log"
    kill -KILL "$READY_PID" 2>/dev/null
    return 1
}

# stop_daemon NAME PID: SIGTERM, at most 10 s to exit; PASS if it exits 0.
stop_daemon() {
    local name=$1 pid=$2 rc
    if ! kill -TERM "$pid" 2>/dev/null; then
        fail "$name-exit" "not running any more"
        return 1
    fi
    ( sleep 10; kill -KILL "$pid" 2>/dev/null ) &
    local killer=$!
    wait "$pid"
    rc=$?
    pkill -P "$killer" 2>/dev/null; kill "$killer" 2>/dev/null
    if [ $rc = 0 ]; then pass "$name-exit-0-on-SIGTERM"; else fail "$name-exit-0-on-SIGTERM" "exit status $rc"; fi
}

# ---- the backend's audit log (JSON lines, docs/backend.md) ----------

# audit_query FILE MODE KEY K=V...: count (MODE count) or largest KEY
# (MODE max) of the records whose fields equal every K=V.
audit_query() {
    python3 - "$@" <<'EOF'
import json, sys
path, mode, key, conds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
want = [c.split("=", 1) for c in conds]
n, most = 0, 0
for line in open(path, encoding="utf-8", errors="replace"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if all(str(rec.get(k)) == v for k, v in want):
        n += 1
        if isinstance(rec.get(key), int):
            most = max(most, rec[key])
print(n if mode == "count" else most)
EOF
}
audit_count() { local f=$1; shift; audit_query "$f" count - "$@"; }
audit_max() { local f=$1 k=$2; shift 2; audit_query "$f" max "$k" "$@"; }

# backd_start AUDIT [OPTION...]: pvcalls-backd on the xen platform, its
# audit log in AUDIT, its output in /xq/out/backd.log; sets BACKD_PID.  A
# backend that does not come up ends the payload.
backd_start() {
    start_ready backd /xq/out/backd.log pvcalls-backd --platform xen --audit "$@" ||
        { finish; exit; }
    BACKD_PID=$READY_PID
}

# ---- the domU, from dom0 ------------------------------------------------

# domu_stage NAME: the domU's files and /run/xq/NAME.cfg (a PV Calls
# device served by dom0, nothing else); failing to stage ends the payload.
domu_stage() {
    domu_prepare || { fail domU-prepare "staging the domU failed"; finish; exit; }
    domu_config "$1" "pvcalls = [ 'backend=0' ]" >"/run/xq/$1.cfg"
}

# domu_up NAME: domu_stage and domu_start; sets DOMID.  A domU that does
# not start stops the backend (BACKD_PID, if one was started) and ends
# the payload.
domu_up() {
    domu_stage "$1"
    domu_start "$1" && return 0
    [ -n "${BACKD_PID:-}" ] && stop_daemon backd "$BACKD_PID"
    finish; exit
}

# domu_prepare: the domU's kernel and initramfs (the cached rootfs plus
# this run's cpio) on tmpfs: xl create reads them slowly from 9p.
domu_prepare() {
    mkdir -p /run/xq
    cp /xqc/vmlinux /run/xq/vmlinux &&
    cat /xqc/domU-rootfs.cpio.gz /xq/domU-run.cpio.gz >/run/xq/domU.cpio.gz
}

# domu_config NAME [LINE...]: a PV domU config on stdout: no vif, no
# disk; LINEs appended (e.g. "pvcalls = [ 'backend=0' ]").
domu_config() {
    local name=$1 line
    shift
    cat <<EOF
name    = "$name"
type    = "pv"
kernel  = "/run/xq/vmlinux"
ramdisk = "/run/xq/domU.cpio.gz"
extra   = "console=hvc0 loglevel=5 ${DOMU_EXTRA:-}"
memory  = ${DOMU_MEM:-768}
vcpus   = ${DOMU_VCPUS:-1}
on_poweroff = "destroy"
on_reboot   = "destroy"
on_crash    = "destroy"
EOF
    for line in "$@"; do echo "$line"; done
}

# domu_start NAME [CONFIG]: xl create; sets DOMID and DOMU_T0 (uptime),
# mirrors the domU's console into this output as "[NAME] line".
domu_start() {
    local name=$1 cfg=${2:-/run/xq/$1.cfg} log
    DOMU_T0=$(uptime_s)
    if ! xl create "$cfg" >/run/xq/xl-create-$name.log 2>&1; then
        fail "xl-create-$name" "$(tail -n 5 /run/xq/xl-create-$name.log)"
        return 1
    fi
    DOMID=$(xl domid "$name")
    note "xl create $name: domid $DOMID in $(since "$DOMU_T0")s"
    log=/var/log/xen/console/guest-$name.log
    ( i=0
      while [ ! -f "$log" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
      exec tail -n +1 -F "$log" 2>/dev/null | grep --line-buffered -v '^PVC-DOMU-OUT' |
          sed -u "s/^/[$name] /" ) &
    eval "DOMU_MIRROR_${name//[^A-Za-z0-9_]/_}=$!"
}

# domu_wait_gone NAME SECONDS: wait until domain NAME no longer exists
# (watching @releaseDomain); 0 if it is gone in time.
domu_wait_gone() { xs_until "$2" @releaseDomain domu_absent "$1"; }
domu_absent() { ! xl domid "$1" >/dev/null 2>&1; }

# domu_collect NAME: stop the console mirror, put what the domU reported
# into /xq/out/domU-NAME/ (console.log, test.log, its /xq/out files) and
# return test.sh's status (98 if the domU never reported one).
domu_collect() {
    local name=$1 raw=/var/log/xen/console/guest-$1.log dir=/xq/out/domU-$1 mirror rc
    mirror=DOMU_MIRROR_${name//[^A-Za-z0-9_]/_}
    if [ -n "${!mirror:-}" ]; then
        pkill -P "${!mirror}" 2>/dev/null; kill "${!mirror}" 2>/dev/null
        wait "${!mirror}" 2>/dev/null
    fi
    mkdir -p "$dir"
    grep -av '^PVC-DOMU-OUT' "$raw" >"$dir/console.log" 2>/dev/null
    sed -n 's/^U| //p' "$raw" | tr -d '\r' >"$dir/test.log" 2>/dev/null
    sed -n 's/^PVC-DOMU-OUT //p' "$raw" | tr -d '\r' | base64 -d 2>/dev/null |
        tar -xzf - -C "$dir" 2>/dev/null
    rc=$(sed -n 's/^PVC-DOMU: END rc=\([0-9]*\).*/\1/p' "$raw" | tail -n 1)
    return "${rc:-98}"
}

# domu_run NAME SECONDS: xl create NAME (config /run/xq/NAME.cfg), wait
# for it to power off (xl destroy after SECONDS), collect; returns
# test.sh's status.
domu_run() {
    local name=$1 secs=$2
    domu_start "$name" || return 97
    if ! domu_wait_gone "$name" "$secs"; then
        fail "domU-$name-powers-off" "still running after ${secs}s: xl destroy"
        xl destroy "$name"
    fi
    note "domU $name gone $(since "$DOMU_T0")s after xl create"
    domu_collect "$name"
}
