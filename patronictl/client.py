"""How patronictl finds the cluster: configuration file + `--dcs-url`, the DCS
handle, and REST calls to members (spec 2.1)."""
from __future__ import annotations

import base64
import copy
import json
import os
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

import click
import urllib3

from qhb_patroni.config import ConfigError, load_config
from qhb_patroni.core.model import Member
from qhb_patroni.dcs import ClusterDCS, from_config

CONFIG_DIR_PATH = click.get_app_dir("patroni")
CONFIG_FILE_PATH = os.path.join(CONFIG_DIR_PATH, "patronictl.yaml")

# --dcs-url scheme -> (default port, config section builder)
DCS_DEFAULTS: Dict[str, int] = {"zookeeper": 2181, "exhibitor": 8181, "consul": 8500, "etcd": 2379, "etcd3": 2379}
DCS_SECTIONS = tuple(DCS_DEFAULTS) + ("kubernetes", "raft")


class CtlError(click.ClickException):
    """A refused operation: `Error: <message>` on stderr, exit code 1."""


def parse_dcs(url: Optional[str]) -> Optional[Dict[str, Any]]:
    """`[scheme://]host[:port]` -> the DCS config section(s) it stands for."""
    if not url:
        return None
    if "//" not in url:
        url = "//" + url
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise CtlError(f"Invalid dcs url: {url.lstrip('/')}") from None
    scheme = parts.scheme
    if not scheme:
        scheme = next((name for name, default in DCS_DEFAULTS.items() if default == port), "etcd")
    elif scheme not in DCS_DEFAULTS:
        raise CtlError(f"Unknown dcs scheme: {scheme}")
    host = parts.hostname or "localhost"
    port = port or DCS_DEFAULTS[scheme]
    if scheme == "zookeeper":
        return {"zookeeper": {"hosts": [f"{host}:{port}"]}}
    if scheme == "exhibitor":
        return {"exhibitor": {"hosts": [host], "port": port}}
    return {scheme: {"host": f"{host}:{port}"}}


def load_ctl_config(
    path: str, dcs_url: Optional[str], environ: Optional[Mapping[str, str]] = None
) -> Dict[str, Any]:
    """The daemon's loader without validation; a missing default file is fine,
    a missing explicit one is an error. `--dcs-url` replaces the file's DCS sections."""
    readable = os.path.exists(path) and os.access(path, os.R_OK)
    if not readable and path != CONFIG_FILE_PATH:
        raise CtlError(
            f"Provided config file {path} not existing or no read rights. Check the -c/--config-file parameter"
        )
    try:
        config = load_config(path if readable else None, environ, validate=False)
    except ConfigError as e:
        if readable:
            raise CtlError(str(e)) from None
        config = {}  # no file and nothing in the environment
    config = copy.deepcopy(config)
    dcs = parse_dcs(dcs_url) or parse_dcs(config.get("dcs_api")) or {}
    if dcs:
        for section in DCS_SECTIONS:
            config.pop(section, None)
        config.update(dcs)
    return config


CTL_RETRY_TIMEOUT = 3.0  # unless the config says otherwise: an interactive tool should fail fast


def get_dcs(config: Mapping[str, Any], scope: str) -> ClusterDCS:
    """A passive handle on cluster `scope` (patronictl writes no member key)."""
    cfg = dict(config)
    cfg["scope"] = scope
    cfg.setdefault("name", scope)
    cfg.setdefault("retry_timeout", CTL_RETRY_TIMEOUT)
    try:
        return from_config(cfg, str(cfg["name"]))
    except ValueError as e:
        raise CtlError(str(e)) from None


# ---- REST calls to members ----------------------------------------------------------


class PatroniRequest:
    """Calls a member's REST API with the ctl/restapi credentials and TLS settings."""

    def __init__(self, config: Mapping[str, Any], insecure: bool = False, timeout: float = 5.0) -> None:
        ctl = dict(config.get("ctl") or {})
        restapi = dict(config.get("restapi") or {})
        self.timeout = timeout
        self.headers: Dict[str, str] = {}
        auth = ctl.get("auth") or restapi.get("auth")
        if not auth:
            for section in (ctl.get("authentication"), restapi.get("authentication")):
                if isinstance(section, Mapping) and section.get("username"):
                    auth = f"{section['username']}:{section.get('password', '')}"
                    break
        if auth:
            self.headers["Authorization"] = "Basic " + base64.b64encode(str(auth).encode()).decode()
        kwargs: Dict[str, Any] = {}
        insecure = insecure or bool(ctl.get("insecure"))
        if insecure:
            kwargs["cert_reqs"] = "CERT_NONE"
        else:
            kwargs["cert_reqs"] = "CERT_REQUIRED"
            cacert = ctl.get("cacert") or restapi.get("cafile")
            if cacert:
                kwargs["ca_certs"] = cacert
        certfile = ctl.get("certfile") or restapi.get("certfile")
        if certfile:
            kwargs["cert_file"] = certfile
            keyfile = ctl.get("keyfile") or restapi.get("keyfile")
            if keyfile:
                kwargs["key_file"] = keyfile
            password = ctl.get("keyfile_password") or restapi.get("keyfile_password")
            if password:
                kwargs["key_password"] = password
        if insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.pool = urllib3.PoolManager(num_pools=10, maxsize=4, **kwargs)

    @staticmethod
    def endpoint_url(api_url: str, endpoint: Optional[str]) -> str:
        parts = urlsplit(api_url)
        path = "/" + (endpoint or "").lstrip("/") if endpoint is not None else parts.path
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))

    def __call__(
        self, member: Member, method: str = "GET", endpoint: Optional[str] = None, data: Any = None,
        timeout: Optional[float] = None,
    ) -> urllib3.BaseHTTPResponse:
        if not member.api_url:
            raise ValueError(f"member {member.name} has no api_url")
        url = self.endpoint_url(member.api_url, endpoint)
        headers = dict(self.headers)
        headers["Connection"] = "close"  # never reuse a connection the server closed while idle
        body = None
        if data is not None:
            body = json.dumps(data).encode("utf-8")
            headers["Content-Type"] = "application/json"
        return self.pool.request(
            method.upper(),
            url,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(total=timeout or self.timeout),
            retries=False,
        )
