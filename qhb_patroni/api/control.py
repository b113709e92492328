"""The REST API's write endpoints (spec 1.8-1.11): every one is "unsafe" (access
checks first) and turns the request into a DCS intent (the /failover key, /config)
or a command on the loop's queue, then wakes the loop.  Nothing here touches the
database or HA internals; a DCS call that fails answers 503, never 500.

Refusal texts and status codes are those of Patroni 3.0.2.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple, Union

from ..config.dynvalid import dynamic_problems, summary
from ..config.errors import ConfigError
from ..core.eligibility import candidate_members, peer_can_take_over
from ..core.model import ClusterView, Member
from ..core.operator import ReinitCommand, RestartCommand, restart_mismatch, version_to_int
from ..dcs import keys
from ..dcs.base import DCSError
from ..runtime.commands import CommandQueue
from ..runtime.ports import Clock, ClusterDCSPort, ProberPort, SystemClock
from ..runtime.probe import PeerProber
from ..runtime.status import StatusView
from ..runtime.tasks import CANCEL_TIMEOUT
from .wire import Request, Response, error_response, json_response, text_response

log = logging.getLogger(__name__)

Body = Union[Dict[str, Any], Response]
Handler = Callable[[StatusView, float, Request], Response]


class RouteTable(Protocol):
    """Where the handlers go (api.server.RestApiServer)."""

    def add_route(self, method: str, segment: str, handler: Handler, unsafe: bool = False) -> None: ...


# ---- request helpers (pure) ---------------------------------------------------------


def read_json(req: Request, optional: bool = False) -> Body:
    """The JSON object in the body, or the error response (411 / 400) of 3.0.2."""
    if "content-length" not in req.headers:
        if optional:
            return {}
        return error_response(411)
    try:
        doc = json.loads(req.body.decode("utf-8")) if req.body.strip() else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: JSON nested 1000s deep
        doc = None
    if doc is None and optional and not req.body.strip():
        return {}
    if not isinstance(doc, dict) or (not doc and not optional):
        return error_response(400)
    return doc


MAX_TIMEOUT = 86400.0  # longest POST /restart timeout accepted (s): a day, a finite wait


def parse_schedule(value: Any, action: str, now: float) -> Tuple[Optional[int], str, Optional[_dt.datetime]]:
    """(status code or None, error, timestamp) like 3.0.2's parse_schedule. A time
    that cannot be expressed in UTC (year 1 ahead of UTC, year 9999 behind) is refused
    as out of range, so no later conversion (here or in any decoder) can raise."""
    when = keys.parse_iso(value) if isinstance(value, str) else None
    if when is None:
        return 422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601", None
    if when.tzinfo is None or when.utcoffset() is None:
        return 400, f"Timezone information is mandatory for the scheduled {action}", None
    if not keys.representable(when):  # the DCS value would be unreadable (and ignored) everywhere
        return 422, f"Scheduled {action} time is out of range", None
    if when.timestamp() < now:
        return 422, f"Cannot schedule {action} in the past", None
    return None, "", when


def parse_timeout(value: Any) -> Tuple[Optional[float], str]:
    """A POST /restart timeout -> (seconds, '') or (None, why): finite, > 0 and at most
    MAX_TIMEOUT (1e400, inf and NaN in JSON or text must never reach a wait)."""
    seconds = parse_seconds(value)
    if seconds is None or seconds <= 0:  # NaN passes this test, and fails the next
        return None, "Timeout should be a positive number of seconds"
    if not math.isfinite(seconds) or seconds > MAX_TIMEOUT:
        return None, f"Timeout should be a finite number of seconds, at most {MAX_TIMEOUT:.0f}"
    return seconds, ""


def bounded_loop_wait(value: Any) -> float:
    """loop_wait from the status view for the waits of a request, always finite (1 s .. 1 h)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 10.0
    return min(max(seconds, 1.0), 3600.0) if math.isfinite(seconds) else 10.0


def parse_seconds(value: Any) -> Optional[float]:
    """An int/float or a string like '30', '30s', '2min', '1h' -> seconds (None if invalid)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    units = (("ms", 0.001), ("min", 60.0), ("s", 1.0), ("h", 3600.0), ("d", 86400.0))
    factor = 1.0
    for suffix, mult in units:
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)].strip(), mult
            break
    try:
        return float(text) * factor
    except ValueError:
        return None


def patch_config(config: Dict[str, Any], patch: Mapping[str, Any]) -> bool:
    """Merge `patch` into `config` in place (3.0.2 rules: None deletes, mappings merge,
    scalars replaced when str() differs). True when something changed."""
    changed = False
    for name, value in patch.items():
        if value is None:
            if name in config:
                del config[name]
                changed = True
        elif isinstance(value, Mapping) and isinstance(config.get(name), dict):
            changed = patch_config(config[name], value) or changed
        elif isinstance(value, Mapping):
            fresh: Dict[str, Any] = {}
            patch_config(fresh, value)
            if config.get(name) != fresh:
                config[name] = fresh
                changed = True
        elif name not in config or str(config[name]) != str(value):
            config[name] = value
            changed = True
    return changed


def config_refusal(data: Mapping[str, Any]) -> Optional[Response]:
    """400 naming every problem of a dynamic configuration about to be written
    (types, finite numbers, ranges, the timing rule, parameter names and values), else None."""
    problems = dynamic_problems(data, source="")
    if not problems:
        return None
    log.warning("refused a dynamic configuration change: %s", summary(ConfigError(problems)))
    return text_response(400, f"Invalid dynamic configuration: {summary(ConfigError(problems))}")


def _deep_equal(a: Any, b: Any) -> bool:
    """3.0.2's deep_compare: mappings key by key, leaves by str()."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return False
    return str(a) == str(b)


def _sync_mode(cluster: ClusterView) -> bool:
    data = cluster.config.data if cluster.config is not None else {}
    return bool(data.get("synchronous_mode"))


def _in_sync(cluster: ClusterView, name: str) -> bool:
    return cluster.sync is not None and name in cluster.sync.sync_standby


# ---- the endpoints ------------------------------------------------------------------


class ControlApi:
    """Write endpoints bound to one node: its own DCS handle (not the loop's), the
    command queue, and the loop's wake-up."""

    def __init__(
        self,
        *,
        dcs: ClusterDCSPort,
        commands: CommandQueue,
        wake: Callable[[], None],
        prober: Optional[ProberPort] = None,
        clock: Optional[Clock] = None,
        poll_interval: float = 0.05,
        restart_wait: float = 300.0,
    ) -> None:
        self.dcs = dcs
        self.commands = commands
        self.wake = wake
        self.prober: ProberPort = prober if prober is not None else PeerProber(timeout=2.0)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.wall = self.clock.wall
        self.poll_interval = poll_interval
        self.restart_wait = restart_wait
        self._dcs_lock = threading.Lock()  # one DCS client shared by the request threads

    def install(self, server: RouteTable) -> None:
        for method, segment, handler in (
            ("POST", "switchover", self.post_switchover),
            ("POST", "failover", self.post_failover),
            ("DELETE", "switchover", self.delete_switchover),
            ("PATCH", "config", self.patch_config),
            ("PUT", "config", self.put_config),
            ("POST", "reload", self.post_reload),
            ("POST", "restart", self.post_restart),
            ("DELETE", "restart", self.delete_restart),
            ("POST", "reinitialize", self.post_reinitialize),
        ):
            server.add_route(method, segment, handler, unsafe=True)

    def _cluster(self) -> ClusterView:
        with self._dcs_lock:
            return self.dcs.get_cluster()

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._dcs_lock:
            return fn(*args, **kwargs)

    # ---- /switchover and /failover ----------------------------------------------
    def post_switchover(self, view: StatusView, now: float, req: Request) -> Response:
        return self._failover(view, req, "switchover")

    def post_failover(self, view: StatusView, now: float, req: Request) -> Response:
        return self._failover(view, req, "failover")

    def _failover(self, view: StatusView, req: Request, action: str) -> Response:
        body = read_json(req)
        if isinstance(body, Response):
            return body
        leader = body.get("leader") or None
        candidate = body.get("candidate") or body.get("member") or None
        scheduled_at = body.get("scheduled_at") or None
        if not all(v is None or isinstance(v, str) for v in (leader, candidate)):
            return text_response(400, "leader and candidate must be member names")
        try:
            cluster = self._cluster()
        except DCSError as exc:
            return text_response(503, f"failed to read the cluster from DCS: {exc}")
        log.info("received %s request with leader=%s candidate=%s scheduled_at=%s",
                 action, leader, candidate, scheduled_at)
        data, code = "", 400
        if action == "failover" and not candidate:
            data = "Failover could be performed only to a specific candidate"
        elif action == "switchover" and not leader:
            data = "Switchover could be performed only from a specific leader"
        if not data and candidate and candidate == leader:
            data = f"{action.title()} target and source are the same."
        when: Optional[_dt.datetime] = None
        if not data and scheduled_at:
            if not leader:
                data = f"Scheduled {action} is possible only from a specific leader"
            elif cluster.paused:
                data = f"Can't schedule {action} in the paused state"
            else:
                err_code, data, when = parse_schedule(scheduled_at, action, self.wall())
                code = err_code or code
        if not data and cluster.paused and not candidate:
            data = f"{action.title()} is possible only to a specific candidate in a paused state"
        if not data and not scheduled_at:
            data = self.failover_impossible(cluster, leader, candidate, action)
            code = 412
        if data:
            return text_response(code, data)
        version = cluster.failover.version if cluster.failover is not None else None
        try:
            ok = self._call(self.dcs.manual_failover, leader, candidate, when, version=version)
        except DCSError:
            ok = False
        if not ok:
            return text_response(503, f"failed to write {action} key into DCS")
        self.wake()
        if when is not None:
            return text_response(202, f"{action.title()} scheduled")
        old = cluster.leader.name if cluster.leader is not None else None
        code, data = self.poll_failover_result(old, candidate, action, max(10.0, bounded_loop_wait(view.loop_wait)) * 2)
        return text_response(code, data)

    def failover_impossible(self, cluster: ClusterView, leader: Optional[str], candidate: Optional[str],
                            action: str) -> str:
        """'' when some candidate can take over, else the 3.0.2 reason (answered with 412)."""
        if leader and (cluster.leader is None or cluster.leader.name != leader):
            return "leader name does not match"
        lead = cluster.leader.name if cluster.leader is not None else None
        members: List[Member]
        if candidate:
            if action == "switchover" and _sync_mode(cluster) and not _in_sync(cluster, candidate):
                return "candidate name does not match with sync_standby"
            members = [m for m in cluster.members if m.name == candidate]
            if not members:
                return "candidate does not exists"
        elif _sync_mode(cluster):
            standbys = cluster.sync.sync_standby if cluster.sync is not None else ()
            members = list(candidate_members(cluster, None, standbys, require_api=False, skip_nofailover=False))
            if not members:
                return f"{action} is not possible: can not find sync_standby"
        else:
            members = list(candidate_members(cluster, lead, skip_nofailover=False))
            if not members:
                return f"{action} is not possible: cluster does not have members except leader"
        if any(peer_can_take_over(status) for status in self.prober.probe(members).values()):
            return ""
        return f"{action} is not possible: no good candidates have been found"

    def poll_failover_result(self, old: Optional[str], candidate: Optional[str], action: str,
                             timeout: float) -> Tuple[int, str]:
        past = action[:-4]  # "switch" / "fail"
        deadline = self.clock.monotonic() + timeout
        while self.clock.monotonic() < deadline:
            time.sleep(self.poll_interval)
            try:
                cluster = self._cluster()
            except DCSError:
                continue
            if cluster.leader is not None and cluster.leader.name != old:
                new = cluster.leader.name
                if not candidate or candidate == new:
                    return 200, f'Successfully {past}ed over to "{new}"'
                return 200, f'{past.title()}ed over to "{new}" instead of "{candidate}"'
            if cluster.failover is None or not (cluster.failover.leader or cluster.failover.candidate):
                return 503, f"{action.title()} failed"
        return 503, f"{action.title()} status unknown"

    def delete_switchover(self, view: StatusView, now: float, req: Request) -> Response:
        try:
            failover = self._cluster().failover
            if failover is None or failover.scheduled_at is None:
                return text_response(404, "no switchover is scheduled")
            if not self._call(self.dcs.set_failover, {}, version=failover.version):
                return error_response(409)
        except DCSError as exc:
            return text_response(503, f"DCS error: {exc}")
        return text_response(200, "scheduled switchover deleted")

    # ---- /config --------------------------------------------------------------------
    def patch_config(self, view: StatusView, now: float, req: Request) -> Response:
        body = read_json(req)
        if isinstance(body, Response):
            return body
        try:
            cluster = self._cluster()
            if cluster.config is None or cluster.config.version is None:
                return error_response(503)
            data = json.loads(json.dumps(dict(cluster.config.data)))
            if patch_config(data, body):
                refusal = config_refusal(data)
                if refusal is not None:
                    return refusal
                value = json.dumps(data, separators=(",", ":"))
                if not self._call(self.dcs.set_config_value, value, version=cluster.config.version):
                    return error_response(409)
        except DCSError:
            return error_response(503)
        self.wake()
        return json_response(200, data)

    def put_config(self, view: StatusView, now: float, req: Request) -> Response:
        body = read_json(req)
        if isinstance(body, Response):
            return body
        refusal = config_refusal(body)
        if refusal is not None:
            return refusal
        try:
            cluster = self._cluster()
            if cluster.config is None or not _deep_equal(body, dict(cluster.config.data)):
                if not self._call(self.dcs.set_config_value, json.dumps(body, separators=(",", ":"))):
                    return error_response(502)
        except DCSError:
            return error_response(502)
        self.wake()
        return json_response(200, body)

    # ---- /reload, /restart, /reinitialize -------------------------------------------
    def post_reload(self, view: StatusView, now: float, req: Request) -> Response:
        self.commands.request_reload()
        return text_response(202, "reload scheduled")

    def post_restart(self, view: StatusView, now: float, req: Request) -> Response:
        body = read_json(req, optional=True)
        if isinstance(body, Response):
            return body
        cluster = view.cluster
        if cluster is not None and cluster.paused and "schedule" in body:
            return text_response(500, "Can't schedule restart in the paused state")
        when: Optional[_dt.datetime] = None
        version: Optional[int] = None
        timeout: Optional[float] = None
        for key, value in body.items():
            if key == "schedule":
                code, data, when = parse_schedule(value, "restart", self.wall())
                if code is not None:
                    return text_response(code, data)
            elif key == "role":
                if value not in ("master", "primary", "replica"):
                    return text_response(400, "PostgreSQL role should be either primary or replica")
            elif key == "postgres_version":
                try:
                    version = version_to_int(str(value))
                except ValueError as exc:
                    return text_response(400, str(exc))
            elif key == "timeout":
                timeout, why = parse_timeout(value)
                if timeout is None:
                    return text_response(400, why)
            elif key != "restart_pending":
                return text_response(400, f"Unknown filter for the scheduled restart: {key}")
        command = RestartCommand(
            ident=self.commands.next_id(),
            role=body.get("role") or None,
            postgres_version=version,
            restart_pending="restart_pending" in body,
            timeout=timeout,
            scheduled_at=when.timestamp() if when is not None else None,
            postmaster_start_time=view.server.postmaster_start_time if when is not None else None,
        )
        if when is not None:
            raw_version = str(body["postgres_version"]) if "postgres_version" in body else None
            if self.commands.schedule_restart(command, when, raw_version):
                return text_response(202, "Restart scheduled")
            return text_response(409, "Another restart is already scheduled")
        server = view.server
        if restart_mismatch(command, server.role, server.server_version, server.pending_restart):
            return text_response(503, "restart conditions are not satisfied")
        ticket = self.commands.submit(command)
        if not ticket.wait((timeout or self.restart_wait) + 30):
            self.commands.withdraw(ticket)
            return text_response(503, "postgres is still starting")
        return text_response(200 if ticket.ok else 503, ticket.message)

    def delete_restart(self, view: StatusView, now: float, req: Request) -> Response:
        if self.commands.cancel_scheduled_restart():
            return text_response(200, "scheduled restart deleted")
        return text_response(404, "no restarts are scheduled")

    def post_reinitialize(self, view: StatusView, now: float, req: Request) -> Response:
        body = read_json(req, optional=True)
        if isinstance(body, Response):
            return body
        force = body.get("force", False)
        if not isinstance(force, bool):
            return text_response(400, "force must be true or false")
        ticket = self.commands.submit(ReinitCommand(self.commands.next_id(), force))
        # With force the loop first cancels a running task and waits for it to end.
        wait = max(30.0, 3 * bounded_loop_wait(view.loop_wait)) + (CANCEL_TIMEOUT if force else 0.0)
        if not ticket.wait(wait):
            self.commands.withdraw(ticket)
            return text_response(503, "reinitialize request was not picked up in time")
        return text_response(200 if ticket.ok else 503, ticket.message)
