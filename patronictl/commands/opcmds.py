"""Commands that act on a running cluster through the members' REST API (spec 2.4):
switchover, failover, restart, reload, reinit, flush, pause, resume.  Prompts,
messages and exit codes follow patronictl 3.0.2."""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Dict, List, Optional, Tuple

import click

from qhb_patroni.core.eligibility import candidate_names
from qhb_patroni.core.model import ClusterView, Member
from qhb_patroni.dcs import ClusterDCS, DCSError, keys

from .. import render
from ..client import CtlError
from ..context import Context, group_option
from ..select import ROLE_CHOICES, leader_member, members_with_role

logger = logging.getLogger("patronictl")
LONG_CALL = 660.0  # seconds: switchover, restart and reinitialize answer when done


def now_stamp() -> str:
    """`YYYY-MM-DD HH:MM:SS.fffff` (microseconds cut to 5 digits, like 3.0.2)."""
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-1]


def parse_scheduled(scheduled: Optional[str]) -> Optional[dt.datetime]:
    """None for 'now'/empty; a timestamp without a zone gets the local one."""
    if (scheduled or "now") == "now":
        return None
    when = keys.parse_iso(str(scheduled))
    if when is None:
        raise CtlError(
            f"Unable to parse scheduled timestamp ({scheduled}). It should be in an unambiguous format (e.g. ISO 8601)"
        )
    try:
        if when.tzinfo is None:
            when = when.astimezone()  # local time zone
        when.astimezone(dt.timezone.utc)  # representable in UTC (year 1 with an offset is not)
        when.timestamp()
    except (OverflowError, ValueError, OSError):
        raise CtlError(f"Scheduled timestamp {scheduled} is out of range") from None
    return when


def output_members(cluster: ClusterView, name: str) -> None:
    click.echo(render.list_output(cluster, name, False, "pretty"))


def _body(response: Any) -> str:
    return response.data.decode("utf-8", "replace")  # type: ignore[no-any-return]


def leader_first(cluster: ClusterView) -> List[Member]:
    lead = cluster.leader.name if cluster.leader is not None else None
    members = [m for m in cluster.members if m.api_url]
    return sorted(members, key=lambda m: (m.name != lead, m.name))


def get_members(obj: Context, cluster: ClusterView, cluster_name: str, member_names: Tuple[str, ...], role: str,
                force: bool, action: str, ask_confirmation: bool = True) -> List[Member]:
    candidates = {m.name: m for m in members_with_role(cluster, role)}
    if not force or member_names:
        if not member_names and not candidates:
            raise CtlError(f"{cluster_name} cluster doesn't have any members")
        output_members(cluster, cluster_name)
    names = list(member_names)
    if not names:
        if force:
            names = list(candidates)
        else:
            names = [click.prompt(f"Which member do you want to {action} [{', '.join(candidates)}]?",
                                  type=str, default="")]
    for member_name in names:
        if member_name not in candidates:
            raise CtlError(f"{member_name} is not a member of cluster")
    members = [candidates[n] for n in names]
    if ask_confirmation and not force:
        if not click.confirm(f"Are you sure you want to {action} members {', '.join(m.name for m in members)}?"):
            raise CtlError(f"Aborted {action}")
    return members


def check_response(response: Any, member_name: str, action_name: str, silent_success: bool = False) -> bool:
    if response.status >= 400:
        click.echo(f"Failed: {action_name} for member {member_name}, status code={response.status}, "
                   f"({_body(response)})")
        return False
    if not silent_success:
        click.echo(f"Success: {action_name} for member {member_name}")
    return True


# ---- switchover / failover -----------------------------------------------------------


def do_failover(obj: Context, action: str, cluster_name: Optional[str], leader: Optional[str],
                candidate: Optional[str], force: bool, scheduled: Optional[str] = None) -> None:
    name, cluster = obj.named_cluster(cluster_name)
    dcs = obj.dcs(name)
    if action == "switchover" and (cluster.leader is None or not cluster.leader.name):
        raise CtlError("This cluster has no leader")
    if action == "switchover":
        assert cluster.leader is not None
        if not leader:
            leader = cluster.leader.name if force else click.prompt("Primary", type=str, default=cluster.leader.name)
        if cluster.leader.name != leader:
            raise CtlError(f"Member {leader} is not the leader of cluster {name}")
    names = list(candidate_names(cluster, leader, require_api=False))
    if not names:
        raise CtlError(f"No candidates found to {action} to")
    if candidate is None and not force:
        candidate = click.prompt("Candidate " + str(names), type=str, default="")
    if action == "failover" and not candidate:
        raise CtlError("Failover could be performed only to a specific candidate")
    if candidate == leader:
        raise CtlError(f"{action.title()} target and source are the same.")
    if candidate and candidate not in names:
        raise CtlError(f"Member {candidate} does not exist in cluster {name}")
    when: Optional[dt.datetime] = None
    if action == "switchover":
        if scheduled is None and not force:
            next_hour = (dt.datetime.now() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
            scheduled = click.prompt(f"When should the switchover take place (e.g. {next_hour} ) ",
                                     type=str, default="now")
        when = parse_scheduled(scheduled)
        if when is not None and cluster.paused:
            raise CtlError("Can't schedule switchover in the paused state")
    value: Dict[str, Any] = {"leader": leader, "candidate": candidate,
                             "scheduled_at": when.isoformat() if when else None}
    click.echo("Current cluster topology")
    output_members(obj.get_cluster(dcs), name)
    if not force:
        demote = f", demoting current leader {cluster.leader.name}" if cluster.leader else ""
        if when is not None:
            if not click.confirm(f"Are you sure you want to schedule {action} of cluster {name} at "
                                 f"{when.isoformat()}{demote}?"):
                raise CtlError(f"Aborting scheduled {action}")
        elif not click.confirm(f"Are you sure you want to {action} cluster {name}{demote}?"):
            raise CtlError(f"Aborting {action}")
    member = leader_member(cluster) if cluster.leader else cluster.member(candidate or "")
    try:
        if member is None:
            raise ValueError("no member to send the request to")
        # The member answers once the new leader is known (up to 2 * max(10, loop_wait) s).
        r = obj.request(member, "POST", action, {k: v for k, v in value.items() if v}, timeout=LONG_CALL)
        if r.status in (200, 202):
            click.echo(f"{now_stamp()} {_body(r)}")
        else:
            click.echo(f"{action.title()} failed, details: {r.status}, {_body(r)}")
            return
    except Exception as exc:
        logger.debug("REST %s failed: %s", action, exc)
        click.echo(f"{now_stamp()} Could not {action} using Patroni api, falling back to DCS")
        try:
            dcs.manual_failover(leader, candidate, when)
        except DCSError as e:
            raise CtlError(f"can not write the failover key: {e}") from None
    output_members(obj.get_cluster(dcs), name)


@click.command("switchover", help="Switchover to a replica")
@click.argument("cluster_name", required=False)
@group_option
@click.option("--leader", "--primary", "--master", "leader", help="The name of the current leader", default=None)
@click.option("--candidate", help="The name of the candidate", default=None)
@click.option("--scheduled", help="Timestamp of a scheduled switchover in unambiguous format (e.g. ISO 8601)",
              default=None)
@click.option("--force", is_flag=True, help="Do not ask for confirmation at any point")
@click.pass_obj
def switchover(obj: Context, cluster_name: Optional[str], leader: Optional[str],
               candidate: Optional[str], scheduled: Optional[str], force: bool) -> None:
    do_failover(obj, "switchover", cluster_name, leader, candidate, force, scheduled)


@click.command("failover", help="Failover to a replica")
@click.argument("cluster_name", required=False)
@group_option
@click.option("--leader", "--primary", "--master", "leader", help="The name of the current leader", default=None)
@click.option("--candidate", help="The name of the candidate", default=None)
@click.option("--force", is_flag=True, help="Do not ask for confirmation at any point")
@click.pass_obj
def failover(obj: Context, cluster_name: Optional[str], leader: Optional[str],
             candidate: Optional[str], force: bool) -> None:
    # 3.0.2 quirk: naming the leader turns the failover into a switchover.
    do_failover(obj, "switchover" if leader else "failover", cluster_name, leader, candidate, force, None)


# ---- flush (restart / reload / reinit: membercmds.py) ----------------------------------


@click.command("flush", help="Discard scheduled events")
@click.argument("cluster_name")
@click.argument("member_names", nargs=-1)
@click.argument("target", type=click.Choice(["restart", "switchover"]))
@group_option
@click.option("--role", "-r", type=click.Choice(list(ROLE_CHOICES)), default="any",
              help="Flush only members with this role")
@click.option("--force", is_flag=True, help="Do not ask for confirmation at any point")
@click.pass_obj
def flush(obj: Context, cluster_name: str, member_names: Tuple[str, ...], target: str,
          role: str, force: bool) -> None:
    dcs = obj.dcs(cluster_name)
    cluster = obj.get_cluster(dcs)
    if target == "restart":
        for member in get_members(obj, cluster, cluster_name, member_names, role, force, "flush"):
            if member.data.get("scheduled_restart"):
                check_response(obj.request(member, "DELETE", "restart"), member.name, "flush scheduled restart")
            else:
                click.echo(f"No scheduled restart for member {member.name}")
        return
    fo = cluster.failover
    if fo is None or fo.scheduled_at is None:
        click.echo("No pending scheduled switchover")
        return
    for member in leader_first(cluster):
        try:
            r = obj.request(member, "DELETE", "switchover")
        except Exception as err:
            logger.warning("%s", err)
            logger.warning("Member %s is not accessible", member.name)
            continue
        if r.status in (200, 404):
            click.echo(f"{'Success' if r.status == 200 else 'Failed'}: {_body(r)}")
            return
        click.echo(f"Failed: member={member.name}, status_code={r.status}, ({_body(r)})")
    click.echo(f"{now_stamp()} Could not find any accessible member of cluster {cluster_name}")
    try:
        dcs.set_failover({}, version=fo.version)
    except DCSError as e:
        raise CtlError(str(e)) from None


# ---- pause / resume ------------------------------------------------------------------


def _wait_pause(dcs: ClusterDCS, paused: bool, old: ClusterView) -> None:
    names = {m.name for m in old.members if m.api_url}
    try:  # /config holds whatever someone wrote
        loop_wait = float((old.config.data.get("loop_wait") if old.config is not None else None) or 10)
    except (TypeError, ValueError):
        loop_wait = 10.0
    if not 0 < loop_wait <= 3600:
        loop_wait = 10.0
    deadline = time.monotonic() + loop_wait + 1
    cluster = old
    while True:
        try:
            cluster = dcs.get_cluster()
        except DCSError:
            pass
        if all(bool(m.data.get("pause", False)) == paused for m in cluster.members if m.name in names):
            break
        if time.monotonic() >= deadline:
            remaining = [m.name for m in cluster.members
                         if m.name in names and bool(m.data.get("pause", False)) != paused]
            if remaining:
                click.echo(f"{', '.join(remaining)} members didn't recognized pause state after {loop_wait:g} seconds")
                return
            break
        time.sleep(0.5)
    click.echo(f"Success: cluster management is {'paused' if paused else 'resumed'}")


def toggle_pause(obj: Context, cluster_name: Optional[str], paused: bool, wait: bool) -> None:
    name, cluster = obj.named_cluster(cluster_name)
    dcs = obj.dcs(name)
    if cluster.paused == paused:
        raise CtlError(f"Cluster is {'already' if paused else 'not'} paused")
    for member in leader_first(cluster):
        try:
            r = obj.request(member, "PATCH", "config", {"pause": True if paused else None})
        except Exception as err:
            logger.warning("%s", err)
            logger.warning("Member %s is not accessible", member.name)
            continue
        if r.status == 200:
            if wait:
                click.echo(f"'{'pause' if paused else 'resume'}' request sent, waiting until it is recognized by "
                           "all nodes")
                _wait_pause(dcs, paused, cluster)
            else:
                click.echo(f"Success: cluster management is {'paused' if paused else 'resumed'}")
        else:
            click.echo(f"Failed: {'pause' if paused else 'resume'} cluster management status code={r.status}, "
                       f"({_body(r)})")
        return
    raise CtlError("Can not find accessible cluster member")


@click.command("pause", help="Disable auto failover")
@click.argument("cluster_name", required=False)
@group_option
@click.option("--wait", is_flag=True, help="Wait until pause is applied on all nodes")
@click.pass_obj
def pause(obj: Context, cluster_name: Optional[str], wait: bool) -> None:
    toggle_pause(obj, cluster_name, True, wait)


@click.command("resume", help="Resume auto failover")
@click.argument("cluster_name", required=False)
@group_option
@click.option("--wait", is_flag=True, help="Wait until pause is cleared on all nodes")
@click.pass_obj
def resume(obj: Context, cluster_name: Optional[str], wait: bool) -> None:
    toggle_pause(obj, cluster_name, False, wait)


COMMANDS = (switchover, failover, flush, pause, resume)
