"""restart, reload and reinit: one REST call per selected member (spec 2.4).

Each member's outcome is reported on its own line and a member that does not
answer (refused, timed out, TLS error...) does not stop the others; the exit
code is 1 unless every member succeeded.  `reinit --wait` gives up on a member
whose REST API stays unreachable and on the whole wait after a deadline.
Prompts and success messages are those of patronictl 3.0.2."""
from __future__ import annotations

import datetime as dt
import json
import random
import time
from typing import Any, Dict, List, Optional, Tuple

import click

from qhb_patroni.core.model import Member

from ..client import CtlError
from ..context import Context, group_option
from ..select import ROLE_CHOICES
from .opcmds import LONG_CALL, _body, get_members, parse_scheduled

WAIT_POLL = 2.0  # seconds between two looks at a reinitializing member
UNREACHABLE_LIMIT = 60.0  # a member silent this long during reinit --wait is given up on
DEFAULT_WAIT_TIMEOUT = 3600.0


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def send(obj: Context, member: Member, method: str, endpoint: str, body: Any = None,
         timeout: Optional[float] = None) -> Tuple[Any, str]:
    """(response, '') or (None, why the member could not be asked)."""
    try:
        return obj.request(member, method, endpoint, body, timeout=timeout), ""
    except Exception as exc:  # unreachable, timeout, TLS, a member without api_url: this member only
        return None, _reason(exc)


def finish(action: str, failed: List[str], total: int) -> None:
    if failed:
        raise CtlError(f"{action} failed on {len(failed)} of {total} member(s): {', '.join(failed)}")


@click.command("restart", help="Restart selected members")
@click.argument("cluster_name")
@click.argument("member_names", nargs=-1)
@group_option
@click.option("--role", "-r", type=click.Choice(list(ROLE_CHOICES)), default="any",
              help="Restart only members with this role")
@click.option("--any", "p_any", is_flag=True, help="Restart a single member only")
@click.option("--scheduled", help="Timestamp of a scheduled restart in unambiguous format (e.g. ISO 8601)",
              default=None)
@click.option("--pg-version", "version", help="Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)",
              default=None)
@click.option("--pending", is_flag=True, help="Restart if pending")
@click.option("--timeout", help="Return error and fail over if necessary when restarting takes longer than this.")
@click.option("--force", is_flag=True, help="Do not ask for confirmation at any point")
@click.pass_obj
def restart(obj: Context, cluster_name: str, member_names: Tuple[str, ...], role: str,
            p_any: bool, scheduled: Optional[str], version: Optional[str], pending: bool, timeout: Optional[str],
            force: bool) -> None:
    cluster = obj.get_cluster(obj.dcs(cluster_name))
    members = get_members(obj, cluster, cluster_name, member_names, role, force, "restart", False)
    if scheduled is None and not force:
        next_hour = (dt.datetime.now() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        scheduled = click.prompt(f"When should the restart take place (e.g. {next_hour}) ", type=str, default="now")
    if p_any:
        random.shuffle(members)
        members = members[:1]
    if version is None and not force:
        version = click.prompt("Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ",
                               type=str, default="")
    content: Dict[str, Any] = {}
    if pending:
        content["restart_pending"] = True
    if version:
        from qhb_patroni.core.operator import version_to_int

        try:
            version_to_int(version)
        except ValueError as e:
            raise CtlError(str(e)) from None
        content["postgres_version"] = version
    when = parse_scheduled(scheduled)
    if when is not None:
        if cluster.paused:
            raise CtlError("Can't schedule restart in the paused state")
        content["schedule"] = when.isoformat()
    if timeout is not None:
        content["timeout"] = timeout
    if not force:
        at = f" at {when.isoformat()}" if when is not None else ""
        if not click.confirm(f"Are you sure you want to restart members {', '.join(m.name for m in members)}{at}?"):
            raise CtlError("Aborted restart")
    failed: List[str] = []
    for member in members:
        if "schedule" in content and force and member.data.get("scheduled_restart"):
            r, error = send(obj, member, "DELETE", "restart")
            if r is None or r.status >= 400:
                detail = error or f"status code={r.status}, ({_body(r)})"
                click.echo(f"Failed: flush scheduled restart for member {member.name}, {detail}")
                failed.append(member.name)
                continue
            click.echo(f"Success: flush scheduled restart for member {member.name}")
        r, error = send(obj, member, "POST", "restart", content, timeout=LONG_CALL)
        if r is None:
            click.echo(f"Failed: restart for member {member.name}, not reachable: {error}")
        elif r.status == 200:
            click.echo(f"Success: restart on member {member.name}")
        elif r.status == 202:
            click.echo(f"Success: restart scheduled on member {member.name}")
        elif r.status == 409:
            click.echo(f"Failed: another restart is already scheduled on member {member.name}")
        else:
            click.echo(f"Failed: restart for member {member.name}, status code={r.status}, ({_body(r)})")
        if r is None or r.status not in (200, 202):
            failed.append(member.name)
    finish("restart", failed, len(members))


@click.command("reload", help="Reload cluster member configuration")
@click.argument("cluster_name")
@click.argument("member_names", nargs=-1)
@group_option
@click.option("--role", "-r", type=click.Choice(list(ROLE_CHOICES)), default="any",
              help="Reload only members with this role")
@click.option("--force", is_flag=True, help="Do not ask for confirmation at any point")
@click.pass_obj
def reload(obj: Context, cluster_name: str, member_names: Tuple[str, ...], role: str,
           force: bool) -> None:
    cluster = obj.get_cluster(obj.dcs(cluster_name))
    members = get_members(obj, cluster, cluster_name, member_names, role, force, "reload")
    loop_wait = (cluster.config.data.get("loop_wait") if cluster.config is not None else None) or 10
    failed: List[str] = []
    for member in members:
        r, error = send(obj, member, "POST", "reload")
        if r is None:
            click.echo(f"Failed: reload for member {member.name}, not reachable: {error}")
        elif r.status == 200:
            click.echo(f"No changes to apply on member {member.name}")
        elif r.status == 202:
            click.echo(f"Reload request received for member {member.name} and will be processed within "
                       f"{loop_wait} seconds")
        else:
            click.echo(f"Failed: reload for member {member.name}, status code={r.status}, ({_body(r)})")
        if r is None or r.status not in (200, 202):
            failed.append(member.name)
    finish("reload", failed, len(members))


def _start_reinit(obj: Context, member: Member, force: bool) -> bool:
    body = {"force": force}
    while True:
        r, error = send(obj, member, "POST", "reinitialize", body, timeout=LONG_CALL)
        if r is None:
            click.echo(f"Failed: reinitialize for member {member.name}, not reachable: {error}")
            return False
        if r.status < 400:
            click.echo(f"Success: reinitialize for member {member.name}")
            return True
        click.echo(f"Failed: reinitialize for member {member.name}, status code={r.status}, ({_body(r)})")
        if (_body(r).endswith(" already in progress") and not body["force"]
                and click.confirm("Do you want to cancel it and reinitialize anyway?")):
            body["force"] = True
            continue
        return False


def wait_reinit(obj: Context, waiting: List[Member], deadline: float,
                clock: Any = time.monotonic, sleep: Any = time.sleep) -> List[str]:
    """Poll GET /patroni until no member is 'creating replica'; the names given up on
    (silent for UNREACHABLE_LIMIT seconds, or still busy at `deadline`)."""
    given_up: List[str] = []
    last_answer = {m.name: clock() for m in waiting}
    shown: List[Member] = []
    while waiting:
        if waiting != shown:
            click.echo(f"Waiting for reinitialize to complete on: {', '.join(m.name for m in waiting)}")
            shown = list(waiting)
        sleep(WAIT_POLL)
        for member in list(waiting):
            r, error = send(obj, member, "GET", "patroni")
            state: Any = None
            if r is not None and r.status < 500:
                try:
                    doc = json.loads(_body(r))
                    state = doc.get("state") if isinstance(doc, dict) else None
                except ValueError:
                    error = "not a JSON answer"
            if state is not None:
                last_answer[member.name] = clock()
                if state != "creating replica":
                    click.echo(f"Reinitialize is completed on: {member.name}")
                    waiting.remove(member)
                continue
            if clock() - last_answer[member.name] >= UNREACHABLE_LIMIT:
                click.echo(f"Failed: reinitialize on member {member.name}: no answer for "
                           f"{UNREACHABLE_LIMIT:g} seconds ({error or 'no state'})")
                waiting.remove(member)
                given_up.append(member.name)
        if waiting and clock() >= deadline:
            for member in waiting:
                click.echo(f"Failed: reinitialize on member {member.name} did not complete in time")
                given_up.append(member.name)
            break
    return given_up


@click.command("reinit", help="Reinitialize cluster member")
@click.argument("cluster_name")
@click.argument("member_names", nargs=-1)
@group_option
@click.option("--force", is_flag=True, help="Do not ask for confirmation at any point")
@click.option("--wait", is_flag=True, help="Wait until reinitialization completes")
@click.option("--wait-timeout", type=click.FloatRange(min=1), default=DEFAULT_WAIT_TIMEOUT, show_default=True,
              help="With --wait: give up after this many seconds")
@click.pass_obj
def reinit(obj: Context, cluster_name: str, member_names: Tuple[str, ...], force: bool,
           wait: bool, wait_timeout: float) -> None:
    cluster = obj.get_cluster(obj.dcs(cluster_name))
    members = get_members(obj, cluster, cluster_name, member_names, "replica", force, "reinitialize")
    failed: List[str] = []
    waiting: List[Member] = []
    for member in members:
        if not _start_reinit(obj, member, force):
            failed.append(member.name)
        elif wait:
            waiting.append(member)
    if waiting:
        failed += wait_reinit(obj, waiting, time.monotonic() + wait_timeout)
    finish("reinitialize", failed, len(members))


COMMANDS = (restart, reload, reinit)
