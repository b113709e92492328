"""A fake database server per simulated node: just enough state to be lied to.

Timelines are tracked as a lineage of (timeline uid, switch lsn) pairs so that
divergence is exact: a node is "on" another node's history when its current
timeline appears there and its lsn does not go past where that timeline ended.
Replication is instantaneous while the replica is on its upstream's history.

With `control_data` on (World(control_data=True)) the server also has a control file
state and a shutdown that takes time: a fast shutdown (the lease guard's fence)
leaves a postmaster that no longer answers nor acknowledges writes but is still
alive, with the control file still saying "in production", until it finishes with a
shutdown checkpoint ("shut down"); a crash leaves the state the server was in.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Optional, Tuple

from qhb_patroni.core.local import (
    DATA_EMPTY,
    DATA_PRESENT,
    STATE_CRASHED,
    STATE_RUNNING,
    STATE_STOPPED,
    LocalState,
)

_uids = itertools.count(1)
History = Tuple[Tuple[int, int], ...]  # ((timeline uid, lsn where it starts), ...)


def port_of(name: str) -> int:
    return 6000 + int("".join(ch for ch in name if ch.isdigit()) or 0)


@dataclass
class FakeDB:
    name: str
    has_data: bool = False
    sysid: Optional[str] = None
    history: History = ()
    lsn: int = 0
    running: bool = False
    in_recovery: bool = True
    state: str = STATE_STOPPED
    following: Optional[str] = None  # node name
    slot_name: Optional[str] = None
    slots: Tuple[str, ...] = ()
    rewind_possible: bool = True
    sync_names: str = ""  # synchronous_standby_names in effect (set by SetSyncStandbyNames)
    control_data: bool = False  # model the control file state and slow shutdowns (see above)
    cstate: Optional[str] = None  # control file state while not running
    shutdown_done_at: Optional[float] = None  # a shutdown under way ends then (postmaster alive)
    blind_shell: bool = False  # report as the chaos run's tree did: not answering = not running
    events: list = field(default_factory=list)  # type: ignore[type-arg]

    # ---- what the shell observes ---------------------------------------------------
    @property
    def writable(self) -> bool:
        return self.running and not self.in_recovery

    @property
    def timeline(self) -> int:
        return len(self.history)

    @property
    def live_cstate(self) -> str:
        """The control file state while the server runs."""
        return "in archive recovery" if self.in_recovery else "in production"

    @property
    def shutting_down(self) -> bool:
        return self.shutdown_done_at is not None

    def observe(self, deadline: Optional[float] = None) -> LocalState:
        cstate: Optional[str] = None
        if self.control_data and self.has_data:
            cstate = self.live_cstate if self.running else self.cstate
        # As the shell reports it: a server last seen running that stops answering reads as
        # running with an unknown role (in_recovery None) while its postmaster lives.
        unanswering = self.shutting_down and self.state == STATE_RUNNING and not self.blind_shell
        return LocalState(
            data_dir=DATA_PRESENT if self.has_data else DATA_EMPTY,
            state=self.state,
            role=("master" if self.writable else "replica") if self.has_data else "uninitialized",
            running=self.running or unanswering,
            postmaster_alive=self.running or (self.shutting_down and not self.blind_shell),
            controldata_state=cstate,
            in_recovery=self.in_recovery if self.running else None,
            timeline=self.timeline or None,
            lsn=self.lsn if self.has_data else None,
            sysid=self.sysid,
            following=f"127.0.0.1:{port_of(self.following)}" if self.following and self.running else None,
            slot_name=self.slot_name if self.following and self.running else None,
            rewind_possible=self.rewind_possible,
            slots=self.slots if self.running else (),
        )

    # ---- timeline arithmetic ---------------------------------------------------------
    def on_history_of(self, other: FakeDB) -> bool:
        """Can I stream from `other` without a rewind?"""
        if not self.history or not other.history:
            return False
        mine = self.history[-1][0]
        uids = [uid for uid, _ in other.history]
        if mine not in uids:
            return False
        i = uids.index(mine)
        end = other.history[i + 1][1] if i + 1 < len(other.history) else None
        return end is None or self.lsn <= end

    # ---- operations -------------------------------------------------------------------
    def bootstrap(self, sysid: str) -> None:
        self.has_data, self.sysid = True, sysid
        self.history, self.lsn = ((next(_uids), 0),), 1
        self.running, self.in_recovery, self.state = True, False, STATE_RUNNING
        self.following = self.slot_name = None

    def clone_from(self, source: FakeDB, leader: Optional[str], slot: Optional[str]) -> None:
        self.has_data, self.sysid = True, source.sysid
        self.history, self.lsn = source.history, source.lsn
        self.start_replica(leader, slot)

    def start_replica(self, upstream: Optional[str], slot: Optional[str]) -> None:
        if self.shutting_down:
            self.stop()  # the shell waits for a shutdown under way before starting again
        self.running, self.in_recovery, self.state = True, True, STATE_RUNNING
        self.following, self.slot_name = upstream, slot if upstream else None

    def begin_shutdown(self, done_at: float) -> None:
        """A fast shutdown request: no more answers nor acknowledged writes from now on;
        the postmaster exits (cleanly) at `done_at` (see tick)."""
        if self.running:
            self.cstate = self.live_cstate  # the shutdown checkpoint is not written yet
            self.running = False
            self.shutdown_done_at = done_at

    def tick(self, now: float) -> None:
        if self.shutdown_done_at is not None and now >= self.shutdown_done_at:
            self.stop()

    def recover_in_single_user_mode(self) -> None:
        """Crash recovery: replays WAL and ends with a shutdown checkpoint."""
        if self.cstate == "in production":
            self.cstate = "shut down"
        elif self.cstate == "in archive recovery":
            self.cstate = "shut down in recovery"

    def stop(self, crashed: bool = False) -> None:
        if self.running or self.shutting_down:
            live = self.cstate if self.shutting_down and self.cstate else self.live_cstate
            self.cstate = live if crashed else ("shut down in recovery" if live == "in archive recovery"
                                                else "shut down")
        self.shutdown_done_at = None
        self.running = False
        self.sync_names = ""  # the next start writes the configured value
        self.in_recovery = True  # a restart always comes back read-only
        self.state = STATE_CRASHED if crashed else STATE_STOPPED
        self.following = self.slot_name = None

    def promote(self) -> bool:
        if not (self.running and self.in_recovery):
            return False
        self.history = self.history + ((next(_uids), self.lsn),)
        self.in_recovery = False
        self.following = self.slot_name = None
        return True

    def contains(self, history: History, lsn: int) -> bool:
        """Is WAL position `lsn` of `history` part of my data?"""
        if not history or not self.has_data:
            return False
        uids = [uid for uid, _ in self.history]
        uid = history[-1][0]
        if uid not in uids:
            return False
        i = uids.index(uid)
        end = self.history[i + 1][1] if i + 1 < len(self.history) else self.lsn
        return lsn <= end

    def waits_for(self) -> Tuple[int, Tuple[str, ...]]:
        """(how many, which names) synchronous_standby_names makes a commit wait for;
        (0, ()) = nobody.  Parsed here independently of the core: 'a', 'N (a,b)', '*'."""
        text = self.sync_names.strip()
        if not text:
            return 0, ()
        if "(" in text:
            count_text, _, rest = text.partition("(")
            names = tuple(n.strip().strip('"') for n in rest.rstrip(")").split(",") if n.strip())
            return int(count_text.strip() or 1), names
        return 1, (text.strip('"'),)

    def rewind_to(self, source: FakeDB) -> None:
        """Throw away what is not on `source`'s history and take its history."""
        self.history, self.lsn = source.history, source.lsn

    def remove_data(self) -> None:
        self.stop()
        self.state = STATE_STOPPED
        self.cstate = None
        self.has_data, self.sysid, self.history, self.lsn = False, None, (), 0
