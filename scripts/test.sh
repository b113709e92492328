#!/usr/bin/env bash
# The one test command (README, .ci/run): on a fresh Debian 12 as root it installs
# what the tests need, then runs lint, type checks and the whole pytest suite as an
# unprivileged user (PostgreSQL refuses to run as root).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -x`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${QHB_VENV:-/opt/qhb-patroni/venv}

if [ "$(id -u)" = 0 ]; then
    bash "$here/scripts/setup-env.sh"
fi

echo "== ruff"
"$VENV/bin/ruff" check --no-cache "$here/qhb_patroni" "$here/patronictl" "$here/tests" "$here/bench" "$here/scripts"
echo "== mypy --strict (qhb_patroni, patronictl)"
(cd "$here" && "$VENV/bin/mypy" --cache-dir=/dev/null qhb_patroni patronictl)

echo "== pytest"
set +e
if [ "$(id -u)" = 0 ]; then
    bash "$here/scripts/run-tests-as-user.sh" -q -ra "$@"
else
    (cd "$here" && PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -p no:cacheprovider -q -ra "$@")
fi
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "pytest collected no tests" >&2
    exit 1
fi
exit $rc
