"""The emulated watchdog device of the fault harness: armed by the first write, fed by
any keepalive or new timeout, disarmed only by a close right after the magic `V`, and
fired only when no keepalive arrived for its timeout (the clock is passed in)."""
from __future__ import annotations

from bench import chaos_watchdog as wd


def test_unarmed_device_never_fires() -> None:
    dev = wd.Device()
    assert not dev.expired(1e9)


def test_timeout_from_the_daemon_and_keepalives_restart_the_countdown() -> None:
    dev = wd.Device()
    dev.feed(b"Ctimeout=7\n", now=100.0)
    assert dev.armed and dev.timeout == 7
    assert not dev.expired(106.9)
    dev.feed(b"1", now=106.0)
    assert not dev.expired(112.9)
    assert dev.expired(113.0)


def test_a_timeout_split_across_reads_is_understood() -> None:
    dev = wd.Device()
    dev.feed(b"Ctime", now=0.0)
    assert not dev.armed
    dev.feed(b"out=5\n1", now=1.0)
    assert dev.timeout == 5 and dev.last_ping == 1.0
    assert dev.expired(6.0) and not dev.expired(5.9)


def test_magic_close_disarms() -> None:
    dev = wd.Device()
    dev.feed(b"Ctimeout=7\n11V", now=0.0)
    assert dev.closed()
    assert not dev.armed and not dev.expired(100.0)


def test_close_without_magic_keeps_counting() -> None:
    """A daemon killed with -9 (or one that closes without `V`) leaves it armed."""
    dev = wd.Device()
    dev.feed(b"Ctimeout=7\n1", now=0.0)
    assert not dev.closed()
    assert dev.expired(7.0)


def test_a_keepalive_after_the_magic_character_cancels_the_release() -> None:
    dev = wd.Device()
    dev.feed(b"Ctimeout=7\nV1", now=0.0)
    assert not dev.closed()
    assert dev.armed


def test_reset_starts_unarmed_with_the_default_timeout() -> None:
    dev = wd.Device()
    dev.feed(b"Ctimeout=7\n1", now=0.0)
    dev.reset()
    assert not dev.armed and dev.timeout == wd.DEFAULT_TIMEOUT and not dev.expired(1e9)


def test_resets_are_attributed_to_the_window_they_fall_in() -> None:
    resets = [wd.Reset(5.0, "node1", 7.0, 7), wd.Reset(20.0, "node2", 7.1, 7)]
    assert wd.resets_in(resets, 0.0, 10.0) == ["node1"]
    assert wd.resets_in(resets, 10.0, 20.0) == []
    assert wd.resets_in(resets, 20.0, 30.0) == ["node2"]


def test_timeout_is_above_loop_wait_plus_retry_timeout_and_below_ttl() -> None:
    margin = wd.timeout_margin(ttl=10, loop_wait=2, retry_timeout=4)
    assert margin == 3 and 2 + 4 < 10 - margin < 10
    assert wd.timeout_margin(ttl=30, loop_wait=10, retry_timeout=10) == 9
