"""When the running background task is cancelled: POST /reinitialize {"force": true}
(3.0.2 cancels the task first).  Pure; decide() answers with a CancelTask action."""
from __future__ import annotations

from .local import TaskKind
from .observation import Observation, Settings
from .operator import ReinitCommand, RestartCommand

# Never cancelled: a promote belongs to the leader; a cancelled bootstrap is fatal.
UNCANCELLABLE = (TaskKind.PROMOTE, TaskKind.BOOTSTRAP)


def cancels_for_forced_reinit(obs: Observation, settings: Settings) -> bool:
    """Cancel the running task only when decide() will then pick the forced reinitialize
    at once - so a cancelled clone or rewind is never left behind without the
    reinitialize that follows: the cluster has a leader that is not this node, this
    node is not a running primary, the task is not a promote or a bootstrap, and the
    forced reinitialize is the first command that would be served (only scheduled
    restarts not yet due may come before it)."""
    task, cluster = obs.task, obs.cluster
    if task is None or task.done or task.kind in UNCANCELLABLE:
        return False
    if cluster is None or cluster.leader is None or cluster.leader.name == settings.name or obs.local.is_primary:
        return False
    for command in obs.commands:
        if isinstance(command, RestartCommand) and command.scheduled_at is not None \
                and (obs.wall_time is None or command.scheduled_at > obs.wall_time):
            continue  # waits for its time: decide() skips it
        return isinstance(command, ReinitCommand) and command.force
    return False
