#!/usr/bin/env bash
# Run a benchmark (bench/NAME.py ARGS...) as the unprivileged test user, from a copy
# of the source tree that this user owns; the database refuses to run as root.
#   bash scripts/run-bench-as-user.sh bench/failover.py 5
set -euo pipefail
QHB_USER=${QHB_TEST_USER:-qhbtest}
VENV=${QHB_VENV:-/opt/qhb-patroni/venv}
[ $# -ge 1 ] || { echo "usage: $0 bench/NAME.py [ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/qhb-patroni-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
tar -C "$here" --exclude=.git --exclude='__pycache__' -cf - . | tar -C "$work" -xf -
chown -R "$QHB_USER" "$work"
cd "$work"
if [ "$(id -u)" = 0 ]; then
    exec_as=(runuser -u "$QHB_USER" --)
else
    exec_as=()
fi
# Byte-compile the copy first, as an installed package is (pip compiles on install):
# otherwise every daemon and patronictl start would compile the sources again and
# the figures would include that, while Patroni 3.0.2 in its venv starts from .pyc.
"${exec_as[@]}" "$VENV/bin/python" -m compileall -q qhb_patroni patronictl >/dev/null
"${exec_as[@]}" env HOME="$work" PYTHONDONTWRITEBYTECODE=1 PATH="$VENV/bin:/usr/bin:/bin" "$VENV/bin/python" "$@"
