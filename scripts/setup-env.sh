#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (as root) for the tests and the demo:
# system packages, an unprivileged user to run the database and the daemons
# (PostgreSQL refuses to run as root), and a virtual environment with our
# Python dependencies that this user can execute.
# Idempotent: re-running it only fills in what is missing.
set -euo pipefail

QHB_USER=${QHB_TEST_USER:-qhbtest}
VENV=${QHB_VENV:-/opt/qhb-patroni/venv}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" != 0 ]; then
    echo "setup-env.sh: run as root (it installs packages and creates user $QHB_USER)" >&2
    exit 1
fi

need_pkgs=()
for p in postgresql-15 etcd-server python3-venv python3-dev libpq-dev gcc procps wrk iproute2; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "setup-env: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# The Debian postgresql package starts a default cluster when a service manager
# exists; our tests never use it.

# Consul for the DCS contract and end-to-end tests (not in Debian 12).
bash "$here/scripts/install-consul.sh"

id "$QHB_USER" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$QHB_USER"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-env: creating $VENV"
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha"
want=$(cat "$here/requirements.txt" "$here/requirements-test.txt" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q -r "$here/requirements.txt" -r "$here/requirements-test.txt"
    echo "$want" > "$stamp"
fi
chmod -R a+rX "$(dirname "$VENV")"

# A real Patroni 3.0.2 for the mixed-cluster end-to-end test (tests/e2e/test_mixed.py,
# skipped without it), in its own venv built from the system Python so that the
# unprivileged test user can run it. Used as a reference only.
PATRONI_302=${PATRONI_302_VENV:-/opt/patroni-3.0.2}
if [ ! -x "$PATRONI_302/bin/patroni" ]; then
    echo "setup-env: installing Patroni 3.0.2 into $PATRONI_302"
    /usr/bin/python3 -m venv "$PATRONI_302"
    "$PATRONI_302/bin/pip" install -q 'patroni[etcd]==3.0.2' psycopg2-binary ydiff==1.2
    chmod -R a+rX "$PATRONI_302"
fi
