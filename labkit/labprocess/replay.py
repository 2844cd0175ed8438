"""Whether the lab is replaying its journal: one switch, `replaying()`, that the recovery turns on
for each change it replays (labkit/labprocess/recovery.py), and that everything else asks through
`active()`.

While a change is replayed:
- nothing is journaled again (recovery.Recovery.change);
- the change is not noted as on its way: a change long made has reached everywhere
  (labkit/labprocess/propagation.py);
- the fresh secrets it draws are the ones it drew the first time (`replayed_secret`, read by
  labkit/labprocess/keys.py);
- moto's authorization is off (settings.INITIAL_NO_AUTH_ACTION_COUNT, the record
  replay_without_authorization): a journaled request is replayed as it was acknowledged.

This module is at the bottom of the lab process: it imports nothing of labkit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_secrets: list[str] | None = None  # None: not replaying


@contextmanager
def replaying(secrets: list[str]) -> Iterator[None]:
    """Replay one change, which drew `secrets` when it was first made."""
    global _secrets
    from moto import settings

    authorization, settings.INITIAL_NO_AUTH_ACTION_COUNT = settings.INITIAL_NO_AUTH_ACTION_COUNT, float("inf")
    outer, _secrets = _secrets, list(secrets)
    try:
        yield
    finally:
        _secrets = outer
        settings.INITIAL_NO_AUTH_ACTION_COUNT = authorization


def active() -> bool:
    """Whether a journaled change is being replayed."""
    return _secrets is not None


def replayed_secret() -> str | None:
    """The next secret the replayed change drew when it was first made; None when not replaying,
    or when it drew no more."""
    return _secrets.pop(0) if _secrets else None
