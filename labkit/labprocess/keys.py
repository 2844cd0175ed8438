"""The lab's fresh secrets: access key ids and secret keys as AWS makes them, and `SECRETS`, where
every one the lab hands out is drawn (users' keys, role sessions, session tokens).

Secrets never follow the lab's seed, so a key of one lab is unknown to every other lab, even at the
same seeded checkpoint. The journal records what each change drew, so that a replayed change draws
the same ones again (labkit/labprocess/replay.py). Below both backends.py and motofixes/: it imports
only replay.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from labkit.labprocess import replay

KEY_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def new_key_pair(prefix: str = "AKIA") -> tuple[str, str]:
    """A fresh access key id and secret, as AWS makes them: never derived from any seed, so a key
    of one lab is unknown to every other lab, even at the same seeded checkpoint."""
    return fresh_key_id(prefix), fresh_secret()


def fresh_key_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(16))


def fresh_secret() -> str:
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(40))


def new_admin_keys() -> tuple[str, str]:
    return new_key_pair("AKIA")


class Secrets:
    """Where the lab's fresh secrets come from: the system's random source, or, while the journal
    replays a change, the values drawn the first time (replay.replayed_secret). `drawn` lists what
    the change being made drew, for its journal entry."""

    def __init__(self) -> None:
        self.drawn: list[str] = []

    def draw(self, make: Callable[[], str]) -> str:
        value = replay.replayed_secret() or make()
        self.drawn.append(value)
        return value


SECRETS = Secrets()
