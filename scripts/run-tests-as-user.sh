#!/usr/bin/env bash
# Run pytest (arguments passed through) as the unprivileged test user, from a
# copy of the source tree that this user owns (the checkout may live under a
# directory the user cannot read, such as /root).
set -euo pipefail
QHB_USER=${QHB_TEST_USER:-qhbtest}
VENV=${QHB_VENV:-/opt/qhb-patroni/venv}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/qhb-patroni-tests.XXXXXX)
trap 'rm -rf "$work"' EXIT
tar -C "$here" --exclude=.git --exclude='__pycache__' -cf - . | tar -C "$work" -xf -
chown -R "$QHB_USER" "$work"
cd "$work"
if [ "$(id -u)" = 0 ]; then
    exec_as=(runuser -u "$QHB_USER" --)
else
    exec_as=()
fi
set +e
"${exec_as[@]}" env HOME="$work" PYTHONDONTWRITEBYTECODE=1 PATH="$VENV/bin:/usr/bin:/bin" \
    "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
exit $rc
