"""Commands that read or write the cluster's DCS keys directly: show-config,
edit-config (CAS on /config) and remove (spec 2.4)."""
from __future__ import annotations

import copy
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click
import yaml

from qhb_patroni.config.errors import ConfigError
from qhb_patroni.config.merge import deep_merge
from qhb_patroni.dcs import DCSError

from .. import render
from ..client import CtlError
from ..context import Context, group_option


@click.command("show-config", help="Show cluster configuration")
@click.argument("cluster_name", required=False)
@group_option
@click.pass_obj
def show_config(obj: Context, cluster_name: Optional[str]) -> None:
    _, cluster = obj.named_cluster(cluster_name)
    data = dict(cluster.config.data) if cluster.config is not None else {}
    click.echo(render.dump_yaml(data))


# ---- edit-config ---------------------------------------------------------------------


def set_path(config: Dict[str, Any], path: Sequence[str], value: Any, prefix: Tuple[str, ...] = ()) -> None:
    """Set (or, for None, delete) a dotted path. Below `postgresql.parameters` the rest
    of the path is one GUC name, so dotted GUCs work. Emptied mappings are removed."""
    if prefix == ("postgresql", "parameters"):
        path = [".".join(path)]
    key = path[0]
    if len(path) == 1:
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
        return
    if not isinstance(config.get(key), dict):
        config[key] = {}
    set_path(config[key], path[1:], value, prefix + (key,))
    if config[key] == {}:
        del config[key]


def apply_pairs(data: Dict[str, Any], pairs: Sequence[str]) -> Dict[str, Any]:
    """`KEY=VALUE` pairs (dotted keys, YAML values) applied to a copy of `data`."""
    changed = copy.deepcopy(data)
    for pair in pairs:
        if not pair or "=" not in pair:
            raise CtlError(f"Invalid parameter setting {pair}")
        key, value = pair.split("=", 1)
        set_path(changed, key.strip().split("."), _load_yaml(value, pair))
    return changed


def _load_yaml(text: Any, what: str) -> Any:
    """yaml.safe_load with a CtlError naming `what` instead of a traceback."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CtlError(f"{what}: invalid YAML: {exc}") from None
    except RecursionError:
        raise CtlError(f"{what}: nested too deeply") from None


def _read_yaml(filename: str) -> Any:
    if filename == "-":
        return _load_yaml(sys.stdin, "stdin")
    try:
        with open(filename, encoding="utf-8") as f:
            return _load_yaml(f, filename)
    except (OSError, UnicodeDecodeError) as exc:
        raise CtlError(f"{filename}: {exc}") from None


def check_dynamic(data: Dict[str, Any]) -> None:
    """Refuse (CtlError, nothing written) what the daemons would refuse to use:
    wrong types, non-finite numbers (-s ttl=.inf), out-of-range values, the
    timing rule, parameter names and values that cannot be written to qhb.conf."""
    # Imported here: the validator pulls in the decision core's types, which only
    # edit-config needs; every other command starts faster without them.
    from qhb_patroni.config.dynvalid import dynamic_problems, summary

    problems = dynamic_problems(data, source="")
    if problems:
        raise CtlError(f"Invalid dynamic configuration, not applied: {summary(ConfigError(problems))}")


def apply_yaml_file(data: Dict[str, Any], filename: str) -> Dict[str, Any]:
    """Patch `data` with a YAML file (`-` = stdin); None values delete keys."""
    patch = _read_yaml(filename)
    if patch is None:
        return copy.deepcopy(data)
    if not isinstance(patch, dict):
        raise CtlError(f"{filename} does not contain a YAML mapping")
    return deep_merge(data, patch, drop_none=True)


def unified_diff(before: str, after: str) -> List[str]:
    def lines(text: str) -> List[str]:
        return [line + "\n" for line in text.rstrip("\n").split("\n")]

    return [line.rstrip("\n") for line in difflib.unified_diff(lines(before), lines(after))]


def _editor() -> str:
    editor = os.environ.get("EDITOR")
    if editor:
        return editor
    for name in ("editor", "vi"):
        found = shutil.which(name)
        if found:
            return found
    raise CtlError("EDITOR environment variable is not set. editor or vi are not available")


def invoke_editor(before: str, cluster_name: str) -> Tuple[str, Dict[str, Any]]:
    fd, path = tempfile.mkstemp(suffix=".yaml", prefix=f"{cluster_name}-config-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(before)
        rc = subprocess.call([_editor(), path])
        if rc:
            raise CtlError(f"Editor exited with return code {rc}")
        with open(path, encoding="utf-8") as f:
            after = f.read()
    finally:
        os.unlink(path)
    data = _load_yaml(after, "the edited configuration")
    if data is not None and not isinstance(data, dict):
        raise CtlError("The edited configuration is not a YAML mapping")
    return after, data or {}


@click.command("edit-config", help="Edit cluster configuration")
@click.argument("cluster_name", required=False)
@group_option
@click.option("--quiet", "-q", is_flag=True, help="Do not show changes")
@click.option("--set", "-s", "kvpairs", multiple=True,
              help="Set specific configuration value. Can be specified multiple times")
@click.option("--pg", "-p", "pgkvpairs", multiple=True,
              help="Set specific PostgreSQL parameter value. Shorthand for -s postgresql.parameters. "
                   "Can be specified multiple times")
@click.option("--apply", "apply_filename", help="Apply configuration from file. Use - for stdin.")
@click.option("--replace", "replace_filename", help="Apply configuration from file, replacing existing "
                                                      "configuration. Use - for stdin.")
@click.option("--force", is_flag=True, help="Do not ask for confirmation at any point")
@click.pass_obj
def edit_config(obj: Context, cluster_name: Optional[str], quiet: bool, kvpairs: Tuple[str, ...],
                pgkvpairs: Tuple[str, ...], apply_filename: Optional[str], replace_filename: Optional[str],
                force: bool) -> None:
    name, cluster = obj.named_cluster(cluster_name)
    current: Dict[str, Any] = dict(cluster.config.data) if cluster.config is not None else {}
    version = cluster.config.version if cluster.config is not None else None
    before = render.dump_yaml(current)

    changed = current
    requested = False
    if replace_filename:
        changed, requested = apply_yaml_file({}, replace_filename), True
    if apply_filename:
        changed, requested = apply_yaml_file(changed, apply_filename), True
    if kvpairs or pgkvpairs:
        pairs = list(kvpairs) + ["postgresql.parameters." + p.lstrip() for p in pgkvpairs]
        changed, requested = apply_pairs(changed, pairs), True
    if requested:
        after = render.dump_yaml(changed)
    else:
        after, changed = invoke_editor(before, name)

    if changed == current:
        if not quiet:
            click.echo("Not changed")
        return
    check_dynamic(changed)
    if not quiet:
        for line in unified_diff(before, after):
            click.echo(line)
    if "-" in (apply_filename, replace_filename) and not force:
        click.echo("Use --force option to apply changes")
        return
    if force or click.confirm("Apply these changes?"):
        try:
            ok = obj.dcs(name).set_config_value(json.dumps(changed), version)
        except DCSError as e:
            raise CtlError(f"can not write the configuration to the DCS: {e}") from None
        if not ok:
            raise CtlError("Config modification aborted due to concurrent changes")
        click.echo("Configuration changed")


# ---- remove -----------------------------------------------------------------------------


@click.command("remove", help="Remove cluster from DCS")
@click.argument("cluster_name")
@group_option
@click.option("--format", "-f", "fmt", default="pretty", help="Output format (pretty, tsv, json, yaml)")
@click.pass_obj
def remove(obj: Context, cluster_name: str, fmt: str) -> None:
    dcs = obj.dcs(cluster_name)
    cluster = obj.get_cluster(dcs)
    click.echo(render.list_output(cluster, cluster_name, False, fmt))
    if click.prompt("Please confirm the cluster name to remove", type=str) != cluster_name:
        raise CtlError("Cluster names specified do not match")
    message = "Yes I am aware"
    typed = click.prompt(
        f'You are about to remove all information in DCS for {cluster_name}, please type: "{message}"', type=str
    )
    if typed != message:
        raise CtlError(f'You did not exactly type "{message}"')
    if cluster.leader is not None and cluster.leader.name:
        typed = click.prompt("This cluster currently is healthy. Please specify the leader name to continue")
        if typed != cluster.leader.name:
            raise CtlError("You did not specify the current leader of the cluster")
    try:
        dcs.delete_cluster()
    except DCSError as e:
        raise CtlError(f"can not remove the cluster from the DCS: {e}") from None


COMMANDS = (show_config, edit_config, remove)
