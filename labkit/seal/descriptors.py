"""Closing descriptors a process was handed and will not keep (a client's, a sandbox's)."""

from __future__ import annotations

import contextlib
import os


def close_all(fds: list[int]) -> None:
    """Close each of `fds`, whichever are still open."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
