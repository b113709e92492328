#!/usr/bin/env bash
# Start a local demo cluster: one etcd, three qhb-patroni daemons, QHB naming on the
# PostgreSQL 15 binaries (QHB itself is used when its binaries are in QHB_BIN_DIR).
#   bash scripts/demo.sh          start it, wait until all members run, print `patronictl list`
#   bash scripts/demo.sh list     show the cluster again
#   bash scripts/demo.sh ctl ...  any patronictl command, e.g. `ctl switchover`, `ctl edit-config`
#   bash scripts/demo.sh stop     stop everything it started
# As root it installs what is missing and runs the cluster as the unprivileged user
# qhbtest (the database refuses to run as root).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
QHB_USER=${QHB_TEST_USER:-qhbtest}
VENV=${QHB_VENV:-/opt/qhb-patroni/venv}
cmd=${1:-start}

if [ "$(id -u)" = 0 ]; then
    [ "$cmd" = start ] && bash "$here/scripts/setup-env.sh"
    src=/opt/qhb-patroni/demo-src
    if [ "$cmd" = start ]; then
        # The daemons run from a copy the demo user can read (the checkout may be under /root).
        rm -rf "$src" && mkdir -p "$src"
        tar -C "$here" --exclude=.git --exclude='__pycache__' -cf - . | tar -C "$src" -xf -
        chmod -R a+rX "$src"
    fi
    exec runuser -u "$QHB_USER" -- env PYTHONDONTWRITEBYTECODE=1 PATH="$VENV/bin:/usr/bin:/bin" \
        "$VENV/bin/python" "$src/scripts/demo.py" "$cmd" "${@:2}"
fi
exec env PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" "$here/scripts/demo.py" "$cmd" "${@:2}"
