"""patronictl command line (spec 2.1-2.4): the `main` group and the read-only commands
(list, topology, history, dsn, version); configuration commands live in commands/."""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional, Tuple

import click

from qhb_patroni import PATRONI_COMPAT_VERSION

from . import render
from .client import CONFIG_FILE_PATH, CtlError, load_ctl_config
from .commands import configcmds, membercmds, opcmds, query
from .context import Context, group_option, timestamp, watching
from .select import ROLE_CHOICES, members_with_role

logger = logging.getLogger("patronictl")
QUIET_LOGGERS = ("etcd", "urllib3", "consul", "qhb_patroni.dcs")


@click.group()
@click.option(
    "--config-file", "-c", help="Configuration file", envvar="PATRONICTL_CONFIG_FILE", default=CONFIG_FILE_PATH
)
@click.option("--dcs-url", "--dcs", "-d", "dcs_url", help="The DCS connect url", envvar="DCS_URL")
@click.option("-k", "--insecure", is_flag=True, help="Allow connections to SSL sites without certs")
@click.pass_context
def main(ctx: click.Context, config_file: str, dcs_url: Optional[str], insecure: bool) -> None:
    """patronictl for qhb-patroni (Patroni 3.0.2 compatible)."""
    level = "WARNING"
    for name in ("LOGLEVEL", "PATRONI_LOGLEVEL", "PATRONI_LOG_LEVEL"):
        level = os.environ.get(name, level)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(message)s", level=level.upper())
    if level.upper() == "WARNING":
        # DCS client libraries log every failed retry; a DCS error is reported once, as `Error: ...`.
        # (Levels are restored on exit, which matters when main() runs inside another process.)
        for noisy in QUIET_LOGGERS:
            lg = logging.getLogger(noisy)
            ctx.call_on_close(lambda lg=lg, old=lg.level: lg.setLevel(old))
            lg.setLevel(logging.CRITICAL)
    config = load_ctl_config(config_file, dcs_url)
    ctl_section = config.setdefault("ctl", {}) if isinstance(config.get("ctl", {}), dict) else {}
    insecure = bool(ctl_section.get("insecure")) or insecure
    ctx.obj = Context(config, insecure)


def _watch_option(f: Any) -> Any:
    f = click.option("-W", "w", is_flag=True, help="Auto update the screen every 2 seconds")(f)
    return click.option("-w", "--watch", type=float, help="Auto update the screen every X seconds")(f)


def _list(obj: Context, cluster_names: Tuple[str, ...], extended: bool, ts: bool, fmt: str, w: bool,
          watch: Optional[float]) -> None:
    names = list(cluster_names)
    if not names and obj.scope:
        names = [obj.scope]
    if not names:
        logger.warning("Listing members: No cluster names were provided")
        return
    for name in names:
        dcs = obj.dcs(name)
        for _ in watching(w, watch):
            if ts:
                click.echo(timestamp(0))
            cluster = obj.get_cluster(dcs)
            click.echo(render.list_output(cluster, name, extended, fmt))


@main.command("list", help="List the Patroni members for a given Patroni")
@click.argument("cluster_names", nargs=-1)
@group_option
@click.option("--extended", "-e", is_flag=True, help="Show some extra information")
@click.option("--timestamp", "-t", "ts", is_flag=True, help="Print timestamp")
@click.option("--format", "-f", "fmt", default="pretty", help="Output format (pretty, tsv, json, yaml)")
@_watch_option
@click.pass_obj
def list_members(obj: Context, cluster_names: Tuple[str, ...], extended: bool, ts: bool, fmt: str, w: bool,
                 watch: Optional[float]) -> None:
    _list(obj, cluster_names, extended, ts, fmt, w, watch)


@main.command("topology", help="Prints ASCII topology for given cluster")
@click.argument("cluster_names", nargs=-1)
@group_option
@_watch_option
@click.pass_obj
def topology(obj: Context, cluster_names: Tuple[str, ...], w: bool, watch: Optional[float]) -> None:
    _list(obj, cluster_names, False, False, "topology", w, watch)


@main.command("history", help="Show the history of failovers/switchovers")
@click.argument("cluster_name", required=False)
@group_option
@click.option("--format", "-f", "fmt", default="pretty", help="Output format (pretty, tsv, json, yaml)")
@click.pass_obj
def history(obj: Context, cluster_name: Optional[str], fmt: str) -> None:
    _, cluster = obj.named_cluster(cluster_name)
    columns = ["TL", "LSN", "Reason", "Timestamp", "New Leader"]
    rows = [list(line) + [""] * (len(columns) - len(line)) for line in (cluster.history or ())]
    click.echo(render.render(columns, rows, fmt, None, {"TL": "r", "LSN": "r"}))


@main.command("dsn", help="Generate a dsn for the provided member, defaults to a dsn of the leader")
@click.argument("cluster_name", required=False)
@group_option
@click.option("--role", "-r", type=click.Choice(list(ROLE_CHOICES)), default=None,
              help="Give a dsn of any member with this role")
@click.option("--member", "-m", help="Generate a dsn for this member")
@click.pass_obj
def dsn(obj: Context, cluster_name: Optional[str], role: Optional[str], member: Optional[str]) -> None:
    if role is not None and member is not None:
        raise CtlError("--role and --member are mutually exclusive options")
    _, cluster = obj.named_cluster(cluster_name)
    candidates = members_with_role(cluster, "any" if member else role or "leader")
    chosen = next((m for m in candidates if member is None or m.name == member), None)
    address = chosen.host_port if chosen is not None else None
    if address is None:
        raise CtlError("Can not find a suitable member")
    click.echo(f"host={address[0]} port={address[1]}")


@main.command("version", help="Output version of patronictl command or a running Patroni instance")
@click.argument("cluster_name", required=False)
@click.argument("member_names", nargs=-1)
@group_option
@click.pass_obj
def version(obj: Context, cluster_name: Optional[str], member_names: Tuple[str, ...]) -> None:
    click.echo(f"patronictl version {PATRONI_COMPAT_VERSION}")
    cluster_name = cluster_name or obj.scope
    if not cluster_name:
        return
    click.echo("")
    cluster = obj.get_cluster(obj.dcs(cluster_name))
    for m in sorted(cluster.members, key=lambda m: m.name):
        if not m.api_url or (member_names and m.name not in member_names):
            continue
        try:
            response = obj.request(m, "GET", "patroni")
            data = json.loads(response.data.decode("utf-8"))
            patroni_version = (data.get("patroni") or {}).get("version")
            pg_version = data.get("server_version")
            pg_text = f" PostgreSQL {render.format_pg_version(int(pg_version))}" if pg_version else ""
            click.echo(f"{m.name}: Patroni {patroni_version}{pg_text}")
        except Exception as e:  # any failure is reported per member, like 3.0.2
            click.echo(f"{m.name}: failed to get version: {e}")


for _command in configcmds.COMMANDS + opcmds.COMMANDS + membercmds.COMMANDS + query.COMMANDS:
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
