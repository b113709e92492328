"""The `patroni` command line:
patroni [--version] [--validate-config] [--generate-config] [configfile]."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Mapping, Optional, TextIO

from . import PATRONI_COMPAT_VERSION, __version__
from .config.errors import ConfigError, Problem
from .config.loader import read_config
from .config.system import system_problems
from .config.unimplemented import warning_line
from .config.validator import normalized


def version_line() -> str:
    return f"patroni {PATRONI_COMPAT_VERSION} (qhb-patroni {__version__})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patroni",
        description="qhb-patroni: high-availability daemon for QHB (Patroni-compatible)",
        epilog="Signals: SIGHUP re-reads the configuration file, SIGTERM stops QHB and hands "
               "the leader lock over. Exit status of --validate-config: 0 valid, 1 problems "
               "(one per line on standard error). Documentation: docs/ in the source tree.",
    )
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("--validate-config", action="store_true",
                        help="check the configuration (file + PATRONI_* environment) and exit")
    parser.add_argument("--generate-config", action="store_true",
                        help="print a commented sample configuration for this node and exit")
    parser.add_argument("configfile", nargs="?", default="",
                        help="configuration file or directory (default: PATRONI_CONFIGURATION or "
                             "PATRONI_* environment variables)")
    return parser


def validate_command(path: Optional[str], environ: Optional[Mapping[str, str]] = None,
                     err: Optional[TextIO] = None) -> int:
    """--validate-config: one line per problem on `err`; 1 on problems, else 0.
    Besides the schema, checks data_dir, bin_dir, config_dir and pgpass on this
    machine (not reachability nor ports in use)."""
    out = err if err is not None else sys.stderr
    try:
        loaded = read_config(path, environ)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=out)
        return 1
    problems = loaded.problems()
    if not [p for p in problems if not p.lenient]:  # machine checks need a well-formed configuration
        problems += system_problems(normalized(loaded.config), loaded.origin)
    for problem in problems:
        print(problem.line(), file=out)
    unimplemented = warning_line(loaded.config)
    if unimplemented:  # not an error: the daemon starts with them (and says the same)
        print(f"warning: {unimplemented}", file=out)
    return 1 if problems else 0


def main(argv: Optional[List[str]] = None, environ: Optional[Mapping[str, str]] = None) -> int:
    args = _parser().parse_args(argv)
    env: Mapping[str, str] = os.environ if environ is None else environ
    if args.generate_config:
        from .config.sample import detect_node, generate_password, sample_config

        sys.stdout.write(sample_config(detect_node(), generate_password()))
        return 0
    if args.validate_config:
        return validate_command(args.configfile, env)
    try:
        loaded = read_config(args.configfile, env)
        problems = loaded.problems()
        if [p for p in problems if not p.lenient]:
            raise ConfigError([p for p in problems if not p.lenient])
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)  # nothing on disk has been touched yet
        return 1
    from .api.limits import raise_nofile_limit

    raise_nofile_limit()  # before any descriptor is opened: REST API connections + the HA loop's reserve
    from .daemon import run  # the daemon pulls in everything else; import it only to run

    return int(run(normalized(loaded.config), args.configfile or None, start_warnings(loaded.config, problems)))


def start_warnings(config: Mapping[str, object], problems: List[Problem]) -> List[str]:
    """What the daemon logs at start about a configuration it accepts as 3.0.2 does:
    the lenient problems, then the one line naming the unimplemented keys."""
    lines = [p.line() for p in problems if p.lenient]
    unimplemented = warning_line(config)
    return lines + ([unimplemented] if unimplemented else [])
