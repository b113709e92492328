"""What every patronictl command gets: the loaded configuration and lazily built clients;
shared helpers (timestamps, watch loop)."""
from __future__ import annotations

import datetime as dt
import time
from typing import Any, Dict, Iterator, Optional, Tuple

import click

from qhb_patroni.core.model import ClusterView
from qhb_patroni.dcs import ClusterDCS, DCSError

from .client import CtlError, PatroniRequest, get_dcs


def _refuse_group(_ctx: click.Context, _param: click.Parameter, value: Optional[int]) -> None:
    """--group is accepted where Patroni 3.0.2 accepts it, and refused plainly: it names
    a Citus group (keys under /<namespace>/<scope>/<group>/), which qhb-patroni has not."""
    if value is not None:
        raise CtlError(f"--group {value}: Citus groups are not supported by qhb-patroni "
                       "(the cluster has no groups; run the command without --group)")


group_option = click.option("--group", type=int, expose_value=False, callback=_refuse_group,
                            help="Citus group (not supported by qhb-patroni)")


class Context:
    """What every command gets: the loaded configuration and lazily built clients."""

    def __init__(self, config: Dict[str, Any], insecure: bool) -> None:
        self.config = config
        self.insecure = insecure
        self._request: Optional[PatroniRequest] = None

    @property
    def scope(self) -> Optional[str]:
        scope = self.config.get("scope")
        return str(scope) if scope else None

    def dcs(self, cluster_name: str) -> ClusterDCS:
        return get_dcs(self.config, cluster_name)

    def get_cluster(self, dcs: ClusterDCS) -> ClusterView:
        try:
            return dcs.get_cluster()
        except DCSError as e:
            raise CtlError(f"can not read the cluster from the DCS: {e}") from None

    def named_cluster(self, cluster_name: Optional[str]) -> Tuple[str, ClusterView]:
        """(name, view) of the named cluster, or of the configured scope."""
        name = cluster_name or self.scope
        if not name:
            raise CtlError("No cluster name was provided and the configuration has no scope")
        return name, self.get_cluster(self.dcs(name))

    @property
    def request(self) -> PatroniRequest:
        if self._request is None:
            self._request = PatroniRequest(self.config, insecure=self.insecure)
        return self._request


def timestamp(precision: int = 6) -> str:
    """`YYYY-MM-DD HH:MM:SS[.ffffff]` cut to `precision` fraction digits (0 = none)."""
    text = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[: precision - 7] if precision < 6 else text


def watching(w: bool, watch: Optional[float], clear: bool = True) -> Iterator[int]:
    """Yield once, then every `watch` seconds (2 with -W) until interrupted."""
    if w and not watch:
        watch = 2
    if watch and clear:
        click.clear()
    yield 0
    while watch:
        time.sleep(watch)
        if clear:
            click.clear()
        yield 0
