"""Property-based fuzzing of the config loader and validators and of the GUC
writer (issue 12): no exception other than ConfigError (config) / ManagerError
(writer), whatever the input; what the validators accept can be written; the
recovery section round-trips through the writer and its parser."""
from __future__ import annotations

import copy
from typing import Any, Dict

import yaml
from hypothesis import given
from hypothesis import strategies as st

from qhb_patroni.config import ConfigError, load_config
from qhb_patroni.config.dynamic import effective_config
from qhb_patroni.config.dynvalid import dynamic_problems
from qhb_patroni.manager import conffiles as cf
from qhb_patroni.manager.settings import ManagerError
from tests.fixtures.fuzz import FUZZ

from .helpers import base

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["30", ".inf", "on", "yes", "8MB", "a\nb", "x'y", "\\", "include '/etc/passwd'", "\udcff"]),
)
VALUES = st.recursive(SCALARS, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)), max_leaves=12)
DYNAMIC_KEYS = st.sampled_from(["ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "pause",
                                "synchronous_mode", "synchronous_node_count", "check_timeline", "slots",
                                "standby_cluster", "postgresql", "failsafe_mode", "ignore_slots", "other"])
PG_SUB = st.sampled_from(["parameters", "recovery_conf", "pg_hba", "use_slots", "use_pg_rewind", "basebackup"])
GUC_NAMES = st.one_of(st.text(max_size=12), st.from_regex(r"[a-z_][a-z0-9_]{0,10}(\.[a-z_][a-z0-9_]{0,5})?",
                                                          fullmatch=True))


@st.composite
def dynamic_configs(draw: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = draw(st.dictionaries(DYNAMIC_KEYS, VALUES, max_size=5))
    if draw(st.booleans()):
        pg = draw(st.dictionaries(PG_SUB, VALUES, max_size=3))
        if draw(st.booleans()):
            pg["parameters"] = draw(st.dictionaries(GUC_NAMES, SCALARS, max_size=4))
        data["postgresql"] = pg
    return data


@FUZZ
@given(dynamic_configs())
def test_fuzz_dynamic_validator_and_merge(data: Dict[str, Any]) -> None:
    problems = dynamic_problems(data)
    if problems:
        return
    # Accepted: the merge works and the GUC writer writes every parameter.
    effective = effective_config(base(), data)
    params = cf.effective_parameters(effective["postgresql"]["parameters"], "cluster", "*", 5432)
    text = cf.render_main_conf("qhb.base.conf", params, "/d/qhb_hba.conf", "/d/qhb_ident.conf")
    assert text.count("\n") == len(params) + 6  # header(2) + include + blank + hba + ident: one line each


@FUZZ
@given(st.dictionaries(st.sampled_from(["scope", "name", "bootstrap", "postgresql", "restapi", "tags", "etcd",
                                        "log", "watchdog", "citus", "ctl", "consul"]), VALUES, max_size=4),
       st.sampled_from(["replace", "merge", "text"]), st.text(max_size=60))
def test_fuzz_config_loader_and_validator(overlay: Dict[str, Any], how: str, text: str) -> None:
    if how == "text":
        document = text
    else:
        config = base() if how == "merge" else {}
        for key, value in overlay.items():
            if how == "merge" and isinstance(config.get(key), dict) and isinstance(value, dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = copy.deepcopy(value)
        document = yaml.safe_dump(config)
    try:
        loaded = load_config(None, environ={"PATRONI_CONFIGURATION": document})
    except ConfigError as exc:
        assert str(exc) and exc.lines
        return
    effective_config(loaded, None)  # a valid local configuration always merges


@FUZZ
@given(st.dictionaries(st.text(max_size=10), SCALARS, max_size=5),
       st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
                       st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=20), max_size=5))
def test_fuzz_guc_writer(anything: Dict[str, Any], recovery: Dict[str, str]) -> None:
    try:
        cf.render_main_conf("qhb.base.conf", anything, "h", "i")
    except ManagerError as exc:
        assert "refusing to write" in str(exc)
    text = cf.render_main_conf("qhb.base.conf", {}, "h", "i", recovery)
    assert (cf.parse_recovery_section(text) or {}) == recovery


ENV_NAMES = st.one_of(
    st.sampled_from(["PATRONI_NAME", "PATRONI_SCOPE", "PATRONI_RESTAPI_LISTEN", "PATRONI_ETCD_HOSTS",
                     "PATRONI_ETCD3_HOST", "PATRONI_CONSUL_URL", "PATRONI_POSTGRESQL_DATA_DIR",
                     "PATRONI_POSTGRESQL_LISTEN", "PATRONI_REPLICATION_USERNAME", "PATRONI_SUPERUSER_PASSWORD",
                     "PATRONI_RESTAPI_ALLOWLIST", "PATRONI_LOG_LOGGERS", "PATRONI_ADMIN_PASSWORD",
                     "PATRONI_ADMIN_OPTIONS", "PATRONI_CITUS_GROUP", "PATRONI_LOG_FILE_NUM"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=20).map(lambda s: "PATRONI_" + s),
)
ENV_VALUES = st.one_of(st.text(max_size=30), st.sampled_from(["[", "{a: ", ".inf", "['127.0.0.1:2379']", "a\nb",
                                                             "127.0.0.1:8008", "{x: [1, {y: 2}]}", "*"]))


@FUZZ
@given(st.dictionaries(ENV_NAMES, ENV_VALUES.filter(lambda v: "\x00" not in v), max_size=8))
def test_fuzz_environment_configuration(environ: Dict[str, str]) -> None:
    try:
        loaded = load_config(None, environ=environ)
    except ConfigError as exc:
        assert exc.lines
        return
    effective_config(loaded, None)
