"""`patronictl query`: run SQL on a chosen member through libpq (spec 2.4)."""
from __future__ import annotations

import datetime as dt
import logging
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

import click

from qhb_patroni.core.model import ClusterView, Member

from .. import render
from ..client import CtlError
from ..context import Context, group_option, watching
from ..select import ROLE_CHOICES, members_with_role

logger = logging.getLogger("patronictl")

Rows = List[Sequence[Any]]


def _now() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def pick_member(cluster: ClusterView, role: Optional[str], member: Optional[str]) -> Optional[Member]:
    if member is not None:
        return cluster.member(member)
    found = members_with_role(cluster, role or "leader")
    return found[0] if found else None


def connect_kwargs(member: Member, params: Dict[str, str]) -> Dict[str, Any]:
    address = member.host_port
    if address is None:
        raise ValueError(f"member {member.name} has no connection address")
    kwargs: Dict[str, Any] = {"host": address[0], "port": address[1], "connect_timeout": 5,
                              "fallback_application_name": "Patroni ctl"}
    from urllib.parse import urlsplit

    path = urlsplit(member.conn_url or "").path.lstrip("/")
    kwargs["dbname"] = params.get("dbname") or path or "postgres"
    if params.get("username"):
        kwargs["user"] = params["username"]
    if params.get("password"):
        kwargs["password"] = params["password"]
    return kwargs


def get_cursor(cluster: ClusterView, params: Dict[str, str], role: Optional[str], member: Optional[str]) -> Any:
    """A cursor on the chosen member, or None when there is none (or its role does not fit)."""
    import psycopg2

    chosen = pick_member(cluster, role, member)
    if chosen is None:
        return None
    conn = psycopg2.connect(**connect_kwargs(chosen, params))
    conn.autocommit = True
    cursor = conn.cursor()
    if role in ("master", "primary", "replica", "standby"):
        cursor.execute("SELECT pg_catalog.pg_is_in_recovery()")
        row = cursor.fetchone()
        in_recovery = bool(row[0]) if row else False
        if in_recovery != (role in ("replica", "standby")):
            conn.close()
            return None
    return cursor


def query_member(cluster: ClusterView, cursor: Any, member: Optional[str], role: Optional[str], sql: str,
                 params: Dict[str, str]) -> Tuple[Rows, Optional[List[str]], Any]:
    """(rows, header or None, cursor to reuse)."""
    import psycopg2

    try:
        if cursor is None:
            cursor = get_cursor(cluster, params, role, member)
        if cursor is None:
            if member is not None:
                message = f"No connection to member {member} is available"
            elif role is not None:
                message = f"No connection to role={role} is available"
            else:
                message = "No connection is available"
            return [[_now(), message]], None, None
        cursor.execute(sql)
        if cursor.description is None:
            return [], None, cursor
        return list(cursor.fetchall()), [d.name for d in cursor.description], cursor
    except (psycopg2.Error, ValueError) as exc:
        logger.debug("%s", exc)
        if cursor is not None and not cursor.connection.closed:
            cursor.connection.close()
        sqlstate = getattr(exc, "pgcode", None) or str(exc)
        return [[_now(), "ERROR, SQLSTATE: {}".format(str(sqlstate).replace("\n", " "))]], None, None


def print_output(header: Optional[List[str]], rows: Rows, fmt: str, delimiter: str) -> None:
    if fmt == "tsv":
        lines = ([delimiter.join(header)] if header else []) + [delimiter.join(str(c) for c in r) for r in rows]
        if lines:
            click.echo("\n".join(lines))
        return
    width = len(rows[0]) if rows else len(header or [])
    columns = header or [f"Field {i + 1}" for i in range(width)]
    click.echo(render.render(columns, [list(r) for r in rows], fmt))


@click.command("query", help="Query a Patroni PostgreSQL member")
@click.argument("cluster_name", required=False)
@group_option
@click.option("--format", "fmt", default="tsv", help="Output format (pretty, tsv, json, yaml)")
@click.option("--file", "-f", "p_file", type=click.File("rb"), help="Execute the SQL commands from this file")
@click.option("--password", is_flag=True, help="force password prompt")
@click.option("-U", "--username", help="database user name", type=str)
@click.option("-W", "w", is_flag=True, help="Auto update the screen every 2 seconds")
@click.option("-w", "--watch", type=float, help="Auto update the screen every X seconds")
@click.option("--role", "-r", type=click.Choice(list(ROLE_CHOICES)), default=None,
              help="The role of the query")
@click.option("--member", "-m", help="Query a specific member")
@click.option("--delimiter", help="The column delimiter", default="\t")
@click.option("--command", "-c", help="The SQL commands to execute")
@click.option("-d", "--dbname", help="database name to connect to", type=str)
@click.pass_obj
def query(obj: Context, cluster_name: Optional[str], fmt: str, p_file: Optional[IO[bytes]],
          password: bool, username: Optional[str], w: bool, watch: Optional[float], role: Optional[str],
          member: Optional[str], delimiter: str, command: Optional[str], dbname: Optional[str]) -> None:
    if role is not None and member is not None:
        raise CtlError("--role and --member are mutually exclusive options")
    if p_file is not None:
        if command is not None:
            raise CtlError("--file and --command are mutually exclusive options")
        sql = p_file.read().decode("utf-8")
    elif command is None:
        raise CtlError("You need to specify either --command or --file")
    else:
        sql = command
    params: Dict[str, str] = {}
    if username:
        params["username"] = username
    if password:
        params["password"] = click.prompt("Password", hide_input=True, type=str)
    if dbname:
        params["dbname"] = dbname
    _, cluster = obj.named_cluster(cluster_name)
    cursor: Any = None
    for _ in watching(w, watch, clear=False):
        rows, header, cursor = query_member(cluster, cursor, member, role, sql, params)
        print_output(header, rows, fmt, delimiter)


COMMANDS = (query,)
