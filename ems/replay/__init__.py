"""Replay of session logs in simulated time through the server's own planner (issue 6).

`ems.replay.log` reads the logs, `ems.replay.engine` replays them, `ems.replay.kpis` and
`ems.replay.report` compute and write what formats §6 promises; `ems replay` is the CLI.
"""

from ems.replay.engine import STRATEGIES, ReplayConfig, ReplayError, ReplayResult, replay
from ems.replay.log import LogError, LoggedSession, read_session_log

__all__ = [
    "STRATEGIES",
    "LogError",
    "LoggedSession",
    "ReplayConfig",
    "ReplayError",
    "ReplayResult",
    "read_session_log",
    "replay",
]
