"""patronictl starts without the daemon's decision core, runtime and REST server: every
command pays for what it imports, and `patronictl switchover --force` should return
soon after the switchover is done (issue 14.3).  Checked in a fresh interpreter."""
from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

DAEMON_ONLY = (
    "qhb_patroni.core.actions",
    "qhb_patroni.core.decide",
    "qhb_patroni.core.observation",
    "qhb_patroni.core.operator",
    "qhb_patroni.runtime",
    "qhb_patroni.api.views",
    "qhb_patroni.api.server",
    "qhb_patroni.manager",
    "psycopg2",
)


def loaded_after(statement: str) -> set:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return set(json.loads(out.stdout))


def test_patronictl_cli_does_not_import_the_daemon() -> None:
    loaded = loaded_after("import patronictl.cli")
    assert "patronictl.commands.opcmds" in loaded  # the commands themselves are there
    assert sorted(m for m in DAEMON_ONLY if m in loaded) == []


def test_views_still_serves_the_cluster_document() -> None:
    # GET /cluster and patronictl list render the same document from one function
    from qhb_patroni.api import clusterdoc, views

    assert views.cluster_json is clusterdoc.cluster_json
    assert views.history_json is clusterdoc.history_json
