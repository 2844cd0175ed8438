"""Whether the lab is replaying its journal: one switch, `replaying()`, that the recovery turns on
for each change it replays (labkit/labprocess/recovery.py), and that everything else asks through
`active()`.

While a change is replayed:
- nothing is journaled again (recovery.Recovery.change);
- the change is not noted as on its way: a change long made has reached everywhere
  (labkit/labprocess/propagation.py);
- the fresh secrets it draws are the ones it drew the first time (`replayed_secret`, read by
  labkit/labprocess/keys.py);
- the time it was first made is known (`made_at`): a role session replayed keeps the time it was
  issued (aws:TokenIssueTime, labkit/labprocess/motofixes/decisions.py);
- moto's authorization is off (settings.INITIAL_NO_AUTH_ACTION_COUNT, the record
  replay_without_authorization): a journaled request is replayed as it was acknowledged.

This module is at the bottom of the lab process: it imports nothing of labkit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

_secrets: list[str] | None = None  # None: not replaying
_made_at: datetime | None = None


@contextmanager
def replaying(secrets: list[str], made_at: str | None = None) -> Iterator[None]:
    """Replay one change, which drew `secrets` when it was first made (at `made_at`, ISO 8601, when
    its journal entry says: entries written before issue 23 do not)."""
    global _secrets, _made_at
    from moto import settings

    authorization, settings.INITIAL_NO_AUTH_ACTION_COUNT = settings.INITIAL_NO_AUTH_ACTION_COUNT, float("inf")
    outer, _secrets = _secrets, list(secrets)
    outer_at, _made_at = _made_at, datetime.fromisoformat(made_at) if made_at else None
    try:
        yield
    finally:
        _secrets, _made_at = outer, outer_at
        settings.INITIAL_NO_AUTH_ACTION_COUNT = authorization


def made_at() -> datetime | None:
    """When the change being replayed was first made; None when not replaying or not known."""
    return _made_at


def active() -> bool:
    """Whether a journaled change is being replayed."""
    return _secrets is not None


def replayed_secret() -> str | None:
    """The next secret the replayed change drew when it was first made; None when not replaying,
    or when it drew no more."""
    return _secrets.pop(0) if _secrets else None
