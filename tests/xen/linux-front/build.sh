#!/bin/bash
# linux-front's host-side hook: Linux's pvcalls-front with the data-path
# selftest (tests/kmod), built against the guests' kernel headers, into
# the domU's /xq/in.
set -euo pipefail
domu=$2
top=$(cd "$(dirname "$0")/../../.." && pwd)
"$top/tests/kmod/build" "$PVC_XEN_KHEADERS" "$domu/xq/in"
