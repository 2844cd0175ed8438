"""The lab's options that outlive a restart, in the state directory's `options.json` (owner-only):
`{"iam_delay": SECONDS, "sealed": true|false}`, each saved by `labkit up` when it is given
(`--iam-delay N`, `--sealed`/`--no-sealed`), and taken by a lab started without it (`labkit up`, or
`labkit.connect()` after a crash).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from labkit.protocol import valid_delay

OPTIONS_FILE = "options.json"  # in the state directory


def saved(home: Path) -> dict[str, object]:
    """The options saved in `home`; {} when there are none or the file cannot be read."""
    try:
        options = json.loads((home / OPTIONS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return options if isinstance(options, dict) else {}


def save(home: Path, name: str, value: object) -> None:
    """Save one option beside the others, atomically (owner-only): the file is replaced whole or
    not at all. Raises OSError (a full disk), after removing what it began to write."""
    options = {key: old for key, old in saved(home).items() if key != name}
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".options-", suffix=".json")  # owner-only (0600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({**options, name: value}, f)
        os.replace(tmp, home / OPTIONS_FILE)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise


def chosen_delay(home: Path, given: float | None, say: Callable[[str], None] = print) -> float:
    """The lab's delay (labkit/labprocess/propagation.py): `given` (saved for the next start), else
    the one saved, else 0. A file that cannot be read counts as no delay, and `say` tells why; one
    that cannot be written (a full disk) leaves the delay to this run, and `say` tells that too."""
    path = home / OPTIONS_FILE
    if given is not None:
        try:
            save(home, "iam_delay", given)
        except OSError as error:
            say(f"labkit: {path} could not be written ({error}); --iam-delay {given:g} holds until the lab stops.")
        return given
    try:
        options = json.loads(path.read_text())
        if isinstance(options, dict) and "iam_delay" not in options:
            return 0.0  # only other options saved (`labkit up --sealed`)
        return valid_delay(str(options["iam_delay"]))
    except FileNotFoundError:
        return 0.0
    except (OSError, ValueError, TypeError, KeyError) as error:
        say(f"labkit: {path} could not be read ({error}); IAM changes apply at once.")
        return 0.0


def chosen_sealed(home: Path, given: bool | None, say: Callable[[str], None] = print) -> bool:
    """Whether the lab asks to seal its instances in namespaces: `given` (saved for the next start),
    else what was saved, else yes (the host may still refuse). One that cannot be saved (a full
    disk) holds for this run, and `say` tells that."""
    before = bool(saved(home).get("sealed", True))
    if given is None:
        return before
    if given != before:
        try:
            save(home, "sealed", given)
        except OSError as error:
            option = "--sealed" if given else "--no-sealed"
            say(f"labkit: {home / OPTIONS_FILE} could not be written ({error}); {option} holds until the lab stops.")
    return given
