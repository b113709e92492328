"""edit-config / show-config / remove against a real etcd (spec 2.4)."""
from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import yaml
from click.testing import CliRunner, Result

from patronictl.cli import main
from patronictl.client import CtlError
from patronictl.commands.configcmds import apply_pairs, set_path
from tests.fixtures.api import dcs_for, member_data, write_cluster
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.etcd

CONFIG = {"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}}


def ctl(etcd: EtcdProcess, *args: str, input: Optional[str] = None, env: Optional[Dict[str, str]] = None) -> Result:
    base = {"PATRONICTL_CONFIG_FILE": "", "DCS_URL": ""}
    base.update(env or {})
    return CliRunner().invoke(main, ["-d", f"etcd://{etcd.host_port}", *args], input=input, env=base,
                              catch_exceptions=False)


@pytest.fixture
def scope(etcd_server: EtcdProcess, etcd_scope: str) -> str:
    write_cluster(etcd_server, etcd_scope, [("n0", member_data("n0", 5432, 8008, role="master"))], leader="n0",
                  config=json.loads(json.dumps(CONFIG)))
    return etcd_scope


def stored(etcd: EtcdProcess, scope: str) -> Dict[str, Any]:
    config = dcs_for(etcd, scope, "x").get_cluster().config
    assert config is not None
    return dict(config.data)


def test_set_and_pg_options(etcd_server: EtcdProcess, scope: str) -> None:
    result = ctl(etcd_server, "edit-config", scope, "-s", "ttl=40", "-s", "loop_wait=null",
                 "-p", "max_connections=200", "-p", "auto_explain.log_min_duration=100", "--force")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "--- " and lines[1] == "+++ "
    assert "-ttl: 30" in lines and "+ttl: 40" in lines and "-loop_wait: 10" in lines
    assert "+    auto_explain.log_min_duration: 100" in lines
    assert lines[-1] == "Configuration changed"
    assert stored(etcd_server, scope) == {
        "ttl": 40,
        "postgresql": {"parameters": {"max_connections": 200, "auto_explain.log_min_duration": 100}},
    }
    assert yaml.safe_load(ctl(etcd_server, "show-config", scope).stdout) == stored(etcd_server, scope)


def test_not_changed_and_quiet(etcd_server: EtcdProcess, scope: str) -> None:
    assert ctl(etcd_server, "edit-config", scope, "-s", "ttl=30", "--force").stdout == "Not changed\n"
    assert ctl(etcd_server, "edit-config", scope, "-s", "ttl=30", "-q").stdout == ""
    quiet = ctl(etcd_server, "edit-config", scope, "-s", "ttl=31", "-q", "--force")
    assert quiet.stdout == "Configuration changed\n" and stored(etcd_server, scope)["ttl"] == 31


def test_confirmation_prompt(etcd_server: EtcdProcess, scope: str) -> None:
    declined = ctl(etcd_server, "edit-config", scope, "-s", "ttl=50", input="n\n")
    assert "Apply these changes? [y/N]: n" in declined.stdout and "Configuration changed" not in declined.stdout
    assert stored(etcd_server, scope)["ttl"] == 30
    accepted = ctl(etcd_server, "edit-config", scope, "-s", "ttl=50", input="y\n")
    assert accepted.stdout.endswith("Configuration changed\n") and stored(etcd_server, scope)["ttl"] == 50


def test_apply_and_replace(etcd_server: EtcdProcess, scope: str, tmp_path: Path) -> None:
    refused = ctl(etcd_server, "edit-config", scope, "--apply", "-", input="ttl: 60\n")
    assert refused.stdout.splitlines()[-1] == "Use --force option to apply changes"
    assert stored(etcd_server, scope)["ttl"] == 30
    applied = ctl(etcd_server, "edit-config", scope, "--apply", "-", "--force",
                  input="ttl: 60\npostgresql:\n  parameters:\n    work_mem: 4MB\n")
    assert applied.exit_code == 0
    assert stored(etcd_server, scope) == {
        "ttl": 60, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100, "work_mem": "4MB"}},
    }  # fmt: skip
    replacement = tmp_path / "new.yaml"
    replacement.write_text("ttl: 40\nmaximum_lag_on_failover: 1048576\n")
    ctl(etcd_server, "edit-config", scope, "--replace", str(replacement), "--force")
    assert stored(etcd_server, scope) == {"ttl": 40, "maximum_lag_on_failover": 1048576}


def editor_script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "editor.py"
    path.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_editor(etcd_server: EtcdProcess, scope: str, tmp_path: Path) -> None:
    editor = editor_script(tmp_path, "p = sys.argv[1]\ntext = open(p).read()\n"
                                     "open(p, 'w').write(text.replace('ttl: 30', 'ttl: 45'))")
    result = ctl(etcd_server, "edit-config", scope, input="y\n", env={"EDITOR": editor})
    assert result.exit_code == 0 and "+ttl: 45" in result.stdout
    assert stored(etcd_server, scope)["ttl"] == 45
    untouched = ctl(etcd_server, "edit-config", scope, env={"EDITOR": editor_script(tmp_path, "pass")})
    assert untouched.stdout == "Not changed\n"
    failing = ctl(etcd_server, "edit-config", scope, env={"EDITOR": editor_script(tmp_path, "sys.exit(3)")})
    assert failing.exit_code == 1 and "Editor exited with return code 3" in failing.stderr


def test_concurrent_change_is_refused(etcd_server: EtcdProcess, scope: str, tmp_path: Path) -> None:
    # the "editor" changes /config behind patronictl's back, then edits the file
    url = f"http://{etcd_server.host_port}/v2/keys/service/{scope}/config"
    editor = editor_script(
        tmp_path,
        "import urllib.parse, urllib.request\n"
        f"data = urllib.parse.urlencode({{'value': '{{\"ttl\": 99}}'}}).encode()\n"
        f"urllib.request.urlopen(urllib.request.Request({url!r}, data=data, method='PUT')).read()\n"
        "p = sys.argv[1]\nopen(p, 'a').write('retry_timeout: 5\\n')",
    )
    result = ctl(etcd_server, "edit-config", scope, "--force", env={"EDITOR": editor})
    assert result.exit_code == 1
    assert "Config modification aborted due to concurrent changes" in result.stderr
    assert stored(etcd_server, scope) == {"ttl": 99}


def test_remove(etcd_server: EtcdProcess, scope: str) -> None:
    wrong = ctl(etcd_server, "remove", scope, input="other\n")
    assert wrong.exit_code == 1 and "Cluster names specified do not match" in wrong.stderr
    not_typed = ctl(etcd_server, "remove", scope, input=f"{scope}\nyes\n")
    assert not_typed.exit_code == 1 and 'You did not exactly type "Yes I am aware"' in not_typed.stderr
    bad_leader = ctl(etcd_server, "remove", scope, input=f"{scope}\nYes I am aware\nn1\n")
    assert bad_leader.exit_code == 1 and "You did not specify the current leader" in bad_leader.stderr
    assert dcs_for(etcd_server, scope, "x").get_cluster().leader is not None
    done = ctl(etcd_server, "remove", scope, input=f"{scope}\nYes I am aware\nn0\n")
    assert done.exit_code == 0, done.output
    assert "This cluster currently is healthy. Please specify the leader name to continue" in done.stdout
    gone = dcs_for(etcd_server, scope, "x").get_cluster()
    assert gone.members == () and gone.leader is None and gone.initialize is None


@pytest.mark.parametrize(
    "pairs,expected",
    [
        (["a.b=1"], {"a": {"b": 1}, "x": 1}),
        (["x=null"], {}),
        (["postgresql.parameters.a.b=on"], {"x": 1, "postgresql": {"parameters": {"a.b": True}}}),
        (["x=[1, 2]"], {"x": [1, 2]}),
    ],
)
def test_apply_pairs(pairs: list, expected: Dict[str, Any]) -> None:
    assert apply_pairs({"x": 1}, pairs) == expected


def test_apply_pairs_errors_and_cleanup() -> None:
    with pytest.raises(CtlError, match="Invalid parameter setting novalue"):
        apply_pairs({}, ["novalue"])
    config: Dict[str, Any] = {"a": {"b": 1}}
    set_path(config, ["a", "b"], None)
    assert config == {}


@pytest.mark.parametrize("args, expected", [
    (("-s", "ttl=.inf"), "ttl: expected a finite number, got inf"),
    (("-s", "ttl=.nan"), "ttl: expected a finite number, got nan"),
    (("-s", "loop_wait=-1", "-s", "ttl=0"), "ttl: must be at least 2, got 0"),
    (("-s", "ttl=[1"), "ttl=[1: invalid YAML"),
    (("-p", 'work_mem="1MB\\ninclude /etc/passwd"'), "postgresql.parameters.work_mem: control character"),
    (("-s", "postgresql.parameters={'bad name': 1}"), "invalid parameter name 'bad name'"),
])
def test_invalid_values_are_refused_before_writing(etcd_server: EtcdProcess, scope: str, args: Any,
                                                   expected: str) -> None:
    result = CliRunner().invoke(main, ["-d", f"etcd://{etcd_server.host_port}", "edit-config", scope, *args,
                                       "--force"], env={"PATRONICTL_CONFIG_FILE": "", "DCS_URL": ""})
    assert result.exit_code == 1
    assert "Error: " in result.stderr and expected in result.stderr, result.stderr
    assert "Configuration changed" not in result.stdout
    assert stored(etcd_server, scope) == CONFIG


def test_invalid_file_is_refused(etcd_server: EtcdProcess, scope: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ttl: 1e400\n")  # YAML reads it as a string: not an integer
    result = CliRunner().invoke(main, ["-d", f"etcd://{etcd_server.host_port}", "edit-config", scope, "--replace",
                                       str(bad), "--force"], env={"PATRONICTL_CONFIG_FILE": "", "DCS_URL": ""})
    assert result.exit_code == 1 and "ttl: expected an integer, got '1e400'" in result.stderr
    assert stored(etcd_server, scope) == CONFIG


def test_the_timing_rule_is_not_a_refusal(etcd_server: EtcdProcess, scope: str) -> None:
    """3.0.2 writes a /config that breaks loop_wait + 2*retry_timeout <= ttl; so do we."""
    result = CliRunner().invoke(main, ["-d", f"etcd://{etcd_server.host_port}", "edit-config", scope, "-s",
                                       "loop_wait=25", "--force"], env={"PATRONICTL_CONFIG_FILE": "", "DCS_URL": ""})
    assert result.exit_code == 0, result.output
    assert stored(etcd_server, scope)["loop_wait"] == 25
