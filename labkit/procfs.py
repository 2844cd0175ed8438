"""What the kernel says of a process, read from `/proc/PID/stat`: its state, parent, session and
start time. (labkit/seal/keeper_process.py reads the same file on its own: it runs with the standard
library alone.)"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

ENDED = frozenset({"Z", "X"})  # a zombie (ended, not yet reaped) or a dead process


@dataclass(frozen=True)
class ProcessStat:
    state: str  # R, S, D, T, Z, … (proc(5))
    parent: int
    session: int
    start: int  # clock ticks after boot: with the pid, names one process for good

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def stat(pid: int | str) -> ProcessStat | None:
    """Process `pid`'s stat, or None when it cannot be read (no such process, no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()  # the name, in parentheses, may hold anything
        return ProcessStat(fields[0].decode(), int(fields[1]), int(fields[3]), int(fields[19]))
    except (OSError, ValueError, IndexError):
        return None


def live_processes() -> dict[int, ProcessStat]:
    """Every process that has not ended, by pid."""
    table: dict[int, ProcessStat] = {}
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc"):
            if name.isdigit() and (found := stat(name)) is not None and not found.ended:
                table[int(name)] = found
    return table
