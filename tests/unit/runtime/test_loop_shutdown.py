"""The planned stop through the real loop on the memory DCS: SIGTERM makes the next
cycle stop the server, release the lock with the shutdown position and end the loop;
the daemon no longer does any of it itself."""
from __future__ import annotations

from qhb_patroni.dcs import keys

from .test_loop_survives import leader_of, make_loop


def test_run_ends_after_the_core_stopped_the_primary_and_released_the_lock() -> None:
    loop, manager, clock, dcs = make_loop()
    assert loop.cycle() is not None and leader_of(dcs) == "a"
    loop.run(lambda: True)  # SIGTERM before the next cycle
    assert loop.exited
    assert ("stop", "fast") in manager.calls
    assert leader_of(dcs) is None
    status = dcs.store.load().nodes.get(keys.STATUS)
    assert status is not None and '"optime":120' in status.value  # the position after the stop
    member = dcs.get_cluster().member("a")
    assert member is not None and member.state == "stopped"  # published by the last cycle


def test_a_failing_stop_keeps_the_lock_and_still_ends() -> None:
    loop, manager, clock, dcs = make_loop()
    loop.cycle()
    manager.stop = lambda mode="fast", timeout=None: False  # type: ignore[method-assign]
    loop.run(lambda: True)
    assert loop.exited and leader_of(dcs) == "a"  # expires after ttl, never handed over while running
