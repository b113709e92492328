"""A local cluster of real daemons on real etcd and real PostgreSQL binaries
behind QHB names, all on 127.0.0.1.  Used by the end-to-end tests, the
benchmarks (bench/) and the demo (scripts/demo.sh).

Nothing here runs as root: the caller must be an unprivileged user
(scripts/run-tests-as-user.sh arranges that for the tests).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import yaml

from qhb_patroni.manager.process import is_alive
from tests.fixtures.pgbin import make_qhb_bin_dir as _make_qhb_bin_dir
from tests.fixtures.ports import free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
def make_qhb_bin_dir(path: str) -> str:
    """A bin directory where QHB's executable names point at PostgreSQL 15."""
    return str(_make_qhb_bin_dir(Path(path)))


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except Exception as exc:  # conditions may probe things that are still down
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http_get(url: str, timeout: float = 2.0, context: Optional[ssl.SSLContext] = None) -> tuple:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Node:
    def __init__(self, cluster: LocalCluster, index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.name = f"node{index}"
        self.dir = os.path.join(cluster.base_dir, self.name)
        self.data_dir = os.path.join(self.dir, "data")
        self.api_port = free_port()
        self.pg_port = free_port()
        self.config_path = os.path.join(self.dir, f"{self.name}.yml")
        self.log_path = os.path.join(self.dir, f"{self.name}.log")
        self.proc: Optional[subprocess.Popen] = None

    @property
    def api(self) -> str:
        scheme = "https" if self.cluster.tls else "http"
        return f"{scheme}://127.0.0.1:{self.api_port}"

    def config(self) -> Dict[str, Any]:
        config = self.base_config()
        if self.cluster.configure is not None:
            self.cluster.configure(self, config)
        return config

    def base_config(self) -> Dict[str, Any]:
        c = self.cluster
        sock_dir = os.path.join(self.dir, "sock")
        return {
            "scope": c.scope,
            "namespace": "/service/",
            "name": self.name,
            "restapi": self._restapi(),
            **c.dcs_section(),
            "log": {"level": "INFO"},
            "bootstrap": {
                "dcs": {
                    "ttl": c.ttl,
                    "loop_wait": c.loop_wait,
                    "retry_timeout": c.retry_timeout,
                    "maximum_lag_on_failover": 1048576,
                    "postgresql": {"use_pg_rewind": True, "use_slots": True},
                    **c.dynamic,
                },
                "initdb": [{"encoding": "UTF8"}, "data-checksums"],
                "qhb_hba": [
                    "host replication replicator 127.0.0.1/32 md5",
                    "host all all 127.0.0.1/32 md5",
                ],
                "users": {"admin": {"password": "admin", "options": ["createrole", "createdb"]}},
            },
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_port}",
                "connect_address": f"127.0.0.1:{self.pg_port}",
                "data_dir": self.data_dir,
                "bin_dir": c.bin_dir,
                "pgpass": os.path.join(self.dir, "pgpass"),
                "authentication": {
                    "replication": {"username": "replicator", "password": "rep-pass"},
                    "superuser": {"username": "qhb", "password": "qhb"},
                    "rewind": {"username": "rewind_user", "password": "rewind_password"},
                },
                "parameters": {"unix_socket_directories": sock_dir},
                "server_log": os.path.join(self.dir, "server.log"),  # the database's own output
                "hba_file": "qhb_hba.conf",
                "ident_file": "qhb_ident.conf",
                "database": "qhb",
                "config_base_name": "qhb",
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
            **self._tls_sections(),
            **(c.local(self) if c.local is not None else {}),
        }

    def _tls_sections(self) -> Dict[str, Any]:
        """With `cluster.tls`: the REST API over https requiring client certificates and
        basic auth, the client side (ctl) presenting the same certificate."""
        tls = self.cluster.tls
        if not tls:
            return {}
        return {"ctl": {"certfile": tls["certfile"], "keyfile": tls["keyfile"], "cacert": tls["certfile"]}}

    def _restapi(self) -> Dict[str, Any]:
        section: Dict[str, Any] = {"listen": f"127.0.0.1:{self.api_port}",
                                   "connect_address": f"127.0.0.1:{self.api_port}"}
        tls = self.cluster.tls
        if tls:
            section.update(certfile=tls["certfile"], keyfile=tls["keyfile"], cafile=tls["certfile"],
                           verify_client="required", authentication={"username": "admin", "password": "secret"})
        return section

    def write_config(self) -> None:
        os.makedirs(os.path.join(self.dir, "sock"), exist_ok=True)
        with open(self.config_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(self.config(), f, sort_keys=False)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        self.write_config()
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("PATRONI_CONFIGURATION", None)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qhb_patroni", self.config_path],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def postmaster_pid(self) -> Optional[int]:
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid"), encoding="utf-8") as f:
                pid = int(f.readline().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def kill9(self) -> None:
        """Crash the node: SIGKILL to the daemon and to the postmaster."""
        pm = self.postmaster_pid()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if pm is not None:
            try:
                os.kill(pm, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_for(lambda: not is_alive(pm), 10, f"postmaster {pm} of {self.name} to die")
            # Its backends notice the postmaster's death on their own; wait for the port to close.
            wait_for(lambda: not _port_open(self.pg_port), 20, f"port {self.pg_port} to close")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM the daemon (planned stop) and wait for it to exit."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> Optional[Dict[str, Any]]:
        try:
            _, body = http_get(self.api + "/patroni", timeout=1.0, context=self.cluster.client_context())
            doc = json.loads(body)
            return doc if isinstance(doc, dict) else None
        except (OSError, ValueError):
            return None

    def is_primary(self) -> bool:
        try:
            code, _ = http_get(self.api + "/primary", timeout=1.0, context=self.cluster.client_context())
            return code == 200
        except OSError:
            return False

    def dsn(self, dbname: str = "qhb") -> str:
        return f"host=127.0.0.1 port={self.pg_port} dbname={dbname} user=qhb password=qhb connect_timeout=2"

    def log_tail(self, lines: int = 60, server: bool = False) -> str:
        """The last lines of the daemon's log (or of the database's own, `server`)."""
        path = os.path.join(self.dir, "server.log") if server else self.log_path
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LocalCluster:
    def __init__(
        self,
        base_dir: str,
        etcd_host: str,
        nodes: int = 3,
        ttl: int = 10,
        loop_wait: int = 2,
        retry_timeout: int = 4,
        scope: str = "qhb-e2e",
        bin_dir: Optional[str] = None,
        dcs: Optional[Callable[[], Dict[str, Any]]] = None,
        dynamic: Optional[Dict[str, Any]] = None,
        tls: Optional[Dict[str, str]] = None,
        configure: Optional[Callable[[Node, Dict[str, Any]], None]] = None,
        local: Optional[Callable[[Node], Dict[str, Any]]] = None,
    ) -> None:
        """`dcs` makes the DCS part of every node's config, e.g.
        `lambda: {"consul": {"url": ...}}`; default `{"etcd": {"hosts": [etcd_host]}}`.
        `tls` ({"certfile", "keyfile"}, self-signed for 127.0.0.1): every REST API over
        https, requiring that certificate from clients.
        `configure(node, config)` changes a node's config in place before it is written.
        `local(node)` adds top-level sections to a node's config (e.g. `watchdog`)."""
        self.tls = tls
        self.configure = configure
        self.local = local
        self.base_dir = base_dir
        self.etcd_host = etcd_host
        self.dcs_section: Callable[[], Dict[str, Any]] = dcs or (lambda: {"etcd": {"hosts": [self.etcd_host]}})
        self.ttl, self.loop_wait, self.retry_timeout = ttl, loop_wait, retry_timeout
        self.scope = scope
        self.dynamic: Dict[str, Any] = dict(dynamic or {})  # extra bootstrap.dcs keys
        self.bin_dir = bin_dir or make_qhb_bin_dir(os.path.join(base_dir, "qhb-bin"))
        self.nodes: List[Node] = [Node(self, i) for i in range(nodes)]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def client_context(self) -> Optional[ssl.SSLContext]:
        """The test's own https client (None without TLS): trusts and presents the certificate."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.tls["certfile"])
        ctx.load_cert_chain(self.tls["certfile"], self.tls["keyfile"])
        return ctx

    def statuses(self) -> Dict[str, Optional[Dict[str, Any]]]:
        return {n.name: n.status() for n in self.nodes}

    def primaries(self) -> List[Node]:
        return [n for n in self.nodes if n.running() and n.is_primary()]

    def primary(self) -> Optional[Node]:
        found = self.primaries()
        return found[0] if len(found) == 1 else None

    def all_running(self, members: Optional[List[Node]] = None) -> bool:
        members = members if members is not None else self.nodes
        sts = [n.status() for n in members]
        return all(s is not None and s.get("state") == "running" for s in sts) and self.primary() is not None

    def wait_all_running(self, timeout: float = 120, members: Optional[List[Node]] = None) -> Node:
        wait_for(lambda: self.all_running(members), timeout, "all members running with one primary", 0.2)
        primary = self.primary()
        assert primary is not None
        return primary

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def stop(self) -> None:
        for node in self.nodes:
            if node.running():
                try:
                    node.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                except ProcessLookupError:
                    pass
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(60)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(10)
        for node in self.nodes:  # never leave a database running
            pm = node.postmaster_pid()
            if pm is not None:
                try:
                    os.kill(pm, signal.SIGQUIT)
                    wait_for(lambda pm=pm: not is_alive(pm), 20, "postmaster to exit")
                except (ProcessLookupError, AssertionError):
                    try:
                        os.kill(pm, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def dump_logs(self) -> str:
        return "\n".join(f"===== {n.name} =====\n{n.log_tail()}\n----- {n.name} server -----\n"
                         f"{n.log_tail(25, server=True)}" for n in self.nodes)


@contextlib.contextmanager
def running(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """Start every member, hand the cluster over, then stop it and check that no
    daemon and no postmaster is left running."""
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        leftovers = [n.name for n in cluster.nodes if n.postmaster_pid() is not None or n.running()]
        assert not leftovers, f"left running: {leftovers}"


def healthy(cluster: LocalCluster, members: Optional[List[Node]] = None, timeout: float = 150) -> Node:
    """Wait until every member (all by default) runs with one primary and return the
    primary; on failure print the members' log tails first."""
    try:
        return cluster.wait_all_running(timeout=timeout, members=members)
    except AssertionError:
        print(cluster.dump_logs())
        raise


def patronictl(
    cluster: LocalCluster, *args: str, stdin: Optional[str] = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `patronictl -c <node0's config> <args>` from this checkout and capture its output."""
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(
        [sys.executable, "-m", "patronictl.cli", "-c", cluster.nodes[0].config_path, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, input=stdin,
    )


class Writer:
    """Inserts a row every `interval` seconds into whichever node is primary and
    remembers which inserts were acknowledged (committed)."""

    def __init__(self, cluster: LocalCluster, interval: float = 0.05, statement_timeout_ms: int = 2000) -> None:
        self.cluster = cluster
        self.interval = interval
        # 0 = none. A cancelled wait for a synchronous standby still commits locally (with a
        # warning), so tests of synchronous mode write without a timeout.
        self.statement_timeout_ms = statement_timeout_ms
        self.acked: List[int] = []
        self.ack_times: List[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._next = 1

    def setup(self) -> None:
        import psycopg2

        primary = self.cluster.primary()
        assert primary is not None
        with psycopg2.connect(primary.dsn()) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS e2e_rows (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")

    def start(self) -> Writer:
        self.setup()
        self._thread.start()
        return self

    def _run(self) -> None:
        import psycopg2

        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    primary = self.cluster.primary()
                    if primary is None:
                        self._stop.wait(self.interval)
                        continue
                    conn = psycopg2.connect(primary.dsn())
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("SET statement_timeout = %s", (self.statement_timeout_ms,))
                    cur.execute("INSERT INTO e2e_rows (id) VALUES (%s)", (self._next,))
                self.acked.append(self._next)
                self.ack_times.append(time.monotonic())
                self._next += 1
            except Exception:
                self.errors += 1
                self._next += 1  # never reuse an id whose fate is unknown
                try:
                    if conn is not None:
                        conn.close()
                except Exception:
                    pass
                conn = None
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def longest_gap(self, after: float = 0.0) -> float:
        times = [t for t in self.ack_times if t >= after]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def in_recovery(node: Node) -> bool:
    """Whether the node's database is read-only (pg_is_in_recovery())."""
    import psycopg2

    with psycopg2.connect(node.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_is_in_recovery()")
        row = cur.fetchone()
        return bool(row[0]) if row else False


def sql(node: Node, statement: str, *args: Any) -> List[Any]:
    """One statement on the node's database, autocommit; its rows ([] when it returns none)."""
    import psycopg2

    conn = psycopg2.connect(node.dsn())
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement, args or None)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def rows_on(node: Node) -> List[int]:
    import psycopg2

    with psycopg2.connect(node.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM e2e_rows ORDER BY id")
        return [r[0] for r in cur.fetchall()]


def etcd_key(cluster: LocalCluster, key: str) -> Optional[str]:
    """The value of /service/<scope>/<key> in etcd (v2 API), None when absent."""
    url = f"http://{cluster.etcd_host}/v2/keys/service/{cluster.scope}/{key}"
    code, body = http_get(url)
    if code == 404:
        return None
    assert code == 200, (code, body)
    value = json.loads(body)["node"].get("value")
    return str(value) if value is not None else None
