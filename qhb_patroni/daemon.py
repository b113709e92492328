"""Wiring: configuration -> DCS client, manager, REST API, HA loop; signals; shutdown order."""
from __future__ import annotations

import base64
import json
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any, Dict, Mapping, Optional, Sequence

from . import PATRONI_COMPAT_VERSION
from .api.control import ControlApi
from .api.failsafe import FailsafeApi
from .api.views import scheduled_restart_json
from .config.dynamic import effective_config, settings_from
from .config.dynvalid import DynamicTracker, dynamic_problems, summary
from .config.reloadable import restart_only_changes
from .config.unimplemented import warning_line
from .core.model import ClusterView
from .core.observation import Settings
from .core.operator import RestartCommand
from .dcs import from_config
from .dcs.base import DCSError
from .log import setup_logging
from .manager import names
from .runtime.commands import CommandQueue
from .runtime.executor import FatalError
from .runtime.loop import HALoop
from .runtime.notify import sd_notify
from .runtime.ports import SystemClock
from .runtime.probe import PeerProber
from .runtime.sampler import ServerSampler
from .runtime.status import StatusBoard, StatusView
from .runtime.watchdog import Watchdog, WatchdogSettings

log = logging.getLogger("qhb_patroni")


def effective_tags(tags: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Tags as published: the boolean ones only when true (spec 1.3)."""
    out: Dict[str, Any] = {}
    for key, value in (tags or {}).items():
        if key in ("nofailover", "noloadbalance", "clonefrom", "nosync") and not value:
            continue
        if value is None:
            continue
        out[str(key)] = value
    return out


def _basic_auth(restapi: Mapping[str, Any]) -> Dict[str, str]:
    """The REST API's own credentials, sent with POST /failsafe to the other members
    (every member of a cluster shares restapi.authentication, as with 3.0.2)."""
    auth = restapi.get("authentication") or {}
    if not isinstance(auth, Mapping) or not auth.get("username"):
        return {}
    token = base64.b64encode(f"{auth.get('username')}:{auth.get('password') or ''}".encode())
    return {"Authorization": "Basic " + token.decode("ascii")}


def _api_url(config: Mapping[str, Any]) -> str:
    restapi = config.get("restapi") or {}
    address = restapi.get("connect_address") or restapi.get("listen")
    scheme = "https" if restapi.get("certfile") else "http"
    return f"{scheme}://{address}/patroni"


def scheduled_restart_doc(commands: CommandQueue, with_start_time: bool) -> Optional[Dict[str, Any]]:
    """The pending scheduled restart with its filters (3.0.2 shape), None if none.
    The member key carries the server's start time at scheduling; GET /patroni does not."""
    scheduled = commands.scheduled_restart()
    if scheduled is None:
        return None
    command = next((c for c in commands.pending()
                    if c.ident == scheduled.ident and isinstance(c, RestartCommand)), None)
    return scheduled_restart_json(scheduled.schedule, command, scheduled.postgres_version, with_start_time)


class Daemon:
    def __init__(self, config: Dict[str, Any], config_path: Optional[str]) -> None:
        self.local_config = config
        self.config_path = config_path
        self.name = str(config["name"])
        self.scope = str(config["scope"])
        self._stop = threading.Event()
        self._dynamic = DynamicTracker()
        self.effective = effective_config(config, self._initial_dynamic())

        from .manager import Manager  # imported here: needs psycopg2

        self.manager = Manager(self.effective)
        self.clock = SystemClock()  # the one clock of the shell: loop, executor, REST API, DCS retries
        self.dcs = from_config(self.effective, self.name, self.clock.monotonic)
        self.watch_dcs = from_config(self.effective, self.name, self.clock.monotonic)
        self.tags = effective_tags(config.get("tags"))
        self.api_url = _api_url(config)
        initial = StatusView(
            name=self.name,
            scope=self.scope,
            version=PATRONI_COMPAT_VERSION,
            api_url=self.api_url,
            conn_url=str(self.manager.member_data().get("conn_url", "")),
            tags=self.tags,
        )
        self.board = StatusBoard(initial)
        from .api.server import RestApiServer

        restapi = config.get("restapi") or {}
        self.api = RestApiServer.from_config(restapi, self.board)
        self.commands = CommandQueue()
        self.api_dcs = from_config(self.effective, self.name, self.clock.monotonic)  # the REST threads' own client
        self._unimplemented_logged = ""
        self.prober = PeerProber(config=config)  # member-to-member calls: ctl.* / restapi.* TLS and auth
        self.loop = HALoop(
            dcs=self.dcs,
            watch_dcs=self.watch_dcs,
            manager=self.manager,
            board=self.board,
            settings_provider=self._settings_for,
            member_extra=self._member_extra,
            clock=self.clock,
            commands=self.commands,
            on_reload=self.reload,
            prober=self.prober,
        )
        ControlApi(dcs=self.api_dcs, commands=self.commands, wake=self.loop.wake.set,
                   clock=self.clock, prober=self.prober).install(self.api)
        self.loop.executor.watchdog = Watchdog(WatchdogSettings.from_config(config.get("watchdog")))
        FailsafeApi(self.loop.failsafe_inbox).install(self.api)
        # The server part of the status view for the REST API: sampled when a request finds
        # it older than a second, else once a minute (runtime/sampler.py).
        self.sampler = ServerSampler(self.board, self.manager.server_status, self.clock.monotonic,
                                     before=self._publish_scheduled_restart)
        self.loop.failsafe_headers = _basic_auth(restapi)

    # ---- dynamic configuration -----------------------------------------------
    def _cache_path(self) -> str:
        return os.path.join(str(self.local_config["postgresql"]["data_dir"]), names.DYNAMIC_CACHE)

    def _initial_dynamic(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self._cache_path(), encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict) and not dynamic_problems(data):
                return data
        except (OSError, ValueError, RecursionError):
            pass
        bootstrap = self.local_config.get("bootstrap") or {}
        dcs = bootstrap.get("dcs")
        return dict(dcs) if isinstance(dcs, dict) else None

    def _settings_for(self, cluster: Optional[ClusterView]) -> Settings:
        if cluster is not None and cluster.config is not None and cluster.config.data:
            effective, error = self._dynamic.offer(self.local_config, cluster.config.data, cluster.config.version)
            if error is not None:  # once per version, not every cycle
                log.error("ignoring the dynamic configuration in the DCS (%s); keeping the last valid one",
                          summary(error))
            if effective is not None:
                self.effective = effective
                self._apply_effective()
                self._save_cache(dict(cluster.config.data))
                self._warn_unimplemented(dict(cluster.config.data))
        return settings_from(self.effective)

    def _warn_unimplemented(self, dynamic: Dict[str, Any]) -> None:
        """/config holds keys qhb-patroni does not implement: say so once per change."""
        line = warning_line(None, dynamic)
        if line and line != self._unimplemented_logged:
            log.warning("dynamic configuration: %s", line)
        self._unimplemented_logged = line

    def _apply_effective(self) -> None:
        ttl = float(self.effective.get("ttl", 30))
        for client in (self.dcs, self.watch_dcs):
            client.set_ttl(ttl)
            client.set_retry_timeout(float(self.effective.get("retry_timeout", 10)))
        self.manager.update_config(self.effective)

    def _save_cache(self, data: Dict[str, Any]) -> None:
        path = self._cache_path()
        if not os.path.exists(os.path.join(os.path.dirname(path), names.PG_VERSION)):
            return  # no data directory yet: nothing to cache into
        tmp = path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not write %s: %s", path, exc)

    def _member_extra(self) -> Dict[str, Any]:
        extra: Dict[str, Any] = {"api_url": self.api_url, "version": PATRONI_COMPAT_VERSION}
        if self.tags:
            extra["tags"] = self.tags
        if self.board.get().paused:  # published just before the member key is written
            extra["pause"] = True
        restart = scheduled_restart_doc(self.commands, with_start_time=True)
        if restart is not None:
            extra["scheduled_restart"] = restart
        self._publish_scheduled_restart()
        return extra

    def _publish_scheduled_restart(self) -> None:
        """GET /patroni shows the scheduled restart (without the internal start time)."""
        restart = scheduled_restart_doc(self.commands, with_start_time=False)
        if restart != self.board.get().scheduled_restart:
            self.board.update(scheduled_restart=restart)

    # ---- reload (POST /reload; SIGHUP does the same) ---------------------------
    def reload(self) -> None:
        """Re-read the local configuration file and apply it (called by the loop before a cycle)."""
        new = self.local_config
        if self.config_path:
            from .config import load_config

            try:  # an invalid file changes nothing: one line, the first problem
                new = load_config(self.config_path)
                for key in ("name", "scope"):
                    if str(new.get(key)) != str(self.local_config.get(key)):
                        raise ValueError(f"{key} cannot change while running (restart qhb-patroni)")
            except Exception as exc:
                log.error("reload: %s; keeping the running configuration", exc)
                return
        dynamic = self._dynamic.valid  # the last valid /config (an invalid one is never applied)
        try:
            effective = effective_config(new, dynamic or self._initial_dynamic())
        except ValueError as exc:
            log.error("reload: %s; keeping the running configuration", exc)
            return
        pending = restart_only_changes(self.local_config, new)
        self.local_config, self.effective = new, effective
        setup_logging(new.get("log"))
        for key in pending:
            log.warning("reload: %s changed; the running value stays until qhb-patroni is restarted", key)
        self.tags = effective_tags(new.get("tags"))
        self.api_url = _api_url(new)
        self.board.update(tags=self.tags, api_url=self.api_url)
        self.loop.failsafe_headers = _basic_auth(self.local_config.get("restapi") or {})
        self._apply_effective()
        self.prober.reconfigure(new)
        self.loop.watchdog.reconfigure(WatchdogSettings.from_config(new.get("watchdog")))
        try:
            self.api.reload(self.local_config.get("restapi") or {})
        except Exception as exc:
            log.error("could not apply the restapi section: %s", exc)
        log.info("Reloaded the configuration")

    # ---- life cycle --------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stop.set()
            self.loop.wake.set()
        elif signum == signal.SIGHUP:  # same as POST /reload: applied by the loop before its next cycle
            self.commands.request_reload()
            self.loop.wake.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        self._apply_effective()
        self.api.start()
        log.info("REST API listening on %s", self.local_config["restapi"]["listen"])
        self.sampler.start()
        rc = 0
        try:
            self.loop.run(self._stop.is_set, on_first_cycle=lambda: sd_notify("READY=1"))
        except FatalError as exc:
            log.critical("%s", exc)
            rc = 1
        finally:
            self._stop.set()
            sd_notify("STOPPING=1")
            self._shutdown(fatal=rc != 0)
        return rc

    def _shutdown(self, fatal: bool) -> None:
        """After the loop: the planned stop (server stopped, lock released, member key
        published) was decided and done by the loop's last cycles; a fatal exit leaves
        the server as it is.  What is left is closing the REST API and the DCS clients."""
        if fatal:
            log.info("exiting without stopping the database server")
        self.loop.watchdog.disarm()  # magic close: the loop has stopped (planned stop or fatal exit)
        self.sampler.stop()
        self.api.stop()
        for client in (self.dcs, self.watch_dcs, self.api_dcs):
            try:
                client.close()
            except Exception:
                pass


def run(config: Dict[str, Any], config_path: Optional[str] = None, warnings: Sequence[str] = ()) -> int:
    setup_logging(config.get("log"))
    for line in warnings:  # configuration 3.0.2 starts with, but not as it should be
        log.warning("%s", line)
    try:
        daemon = Daemon(config, config_path)
    except (ValueError, DCSError) as exc:
        log.critical("%s", exc)
        return 1
    clock = daemon.loop.clock
    started = clock.monotonic()
    rc = daemon.run()
    log.info("qhb-patroni stopped after %.1f s", clock.monotonic() - started)
    return rc
