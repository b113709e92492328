"""patronictl --group: accepted on every command where Patroni 3.0.2 has it, and
refused with a plain message (Citus groups are not supported) before anything is
read or written."""
from __future__ import annotations

from typing import List

import pytest
from click.testing import CliRunner

from patronictl.cli import main

# Every command of 3.0.2 with --group, with the arguments it needs to get past parsing.
COMMANDS: List[List[str]] = [
    ["list"], ["topology"], ["dsn"], ["query", "-c", "SELECT 1"], ["remove", "c"], ["reload", "c"],
    ["restart", "c"], ["reinit", "c"], ["switchover"], ["failover"], ["flush", "c", "restart"], ["pause"],
    ["resume"], ["edit-config"], ["show-config"], ["history"], ["version"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_group_is_accepted_and_refused_plainly(command: List[str]) -> None:
    # A DCS nobody listens on: the refusal must come before any DCS or REST call.
    result = CliRunner().invoke(main, ["-d", "etcd://127.0.0.1:9", *command, "--group", "1"],
                                env={"PATRONICTL_CONFIG_FILE": "", "DCS_URL": ""}, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    assert result.output.strip() == ("Error: --group 1: Citus groups are not supported by qhb-patroni "
                                     "(the cluster has no groups; run the command without --group)")


def test_group_is_listed_in_help() -> None:
    result = CliRunner().invoke(main, ["list", "--help"])
    assert "--group INTEGER" in result.output and "not supported" in result.output


def test_without_group_the_command_runs() -> None:
    result = CliRunner().invoke(main, ["version"], env={"PATRONICTL_CONFIG_FILE": "", "DCS_URL": ""})
    assert result.exit_code == 0 and result.output.startswith("patronictl version 3.0.2")
