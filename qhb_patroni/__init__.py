"""qhb-patroni: a high-availability daemon for QHB, compatible with Patroni 3.0.2."""

__version__ = "0.1.0"
# The Patroni release whose external behaviour (YAML keys, DCS layout, REST API,
# patronictl) we reproduce; published in member keys and REST `patroni.version`.
PATRONI_COMPAT_VERSION = "3.0.2"
