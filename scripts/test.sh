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

# The short fault-harness run (bench/chaos.py: network namespaces, so root only; the
# long runs are by hand, see docs/reliability.md).  Skipped when pytest got arguments
# (a partial run) or QHB_SKIP_CHAOS=1.
if [ "$(id -u)" = 0 ] && [ $# -eq 0 ] && [ "${QHB_SKIP_CHAOS:-0}" != 1 ]; then
    echo "== chaos (20 faults, synchronous_mode_strict, 3-member etcd)"
    set +e
    timeout --signal=INT --kill-after=60 900 "$VENV/bin/python" "$here/bench/chaos.py" \
        --faults 20 --seed "${QHB_CHAOS_SEED:-1}" --mode strict --dcs etcd --hold-max 6
    chaos_rc=$?
    set -e
    if [ $chaos_rc -ne 0 ]; then
        echo "chaos run failed (exit $chaos_rc)" >&2
        [ $rc -ne 0 ] || rc=$chaos_rc
    fi
fi
exit $rc
