"""A snapshot of the lab's state: every moto backend in use, and what the lab keeps beside them,
as bytes for the journal to keep (labkit.labprocess.journal), and back.

Bringing a lab back then takes the time to load one snapshot and replay the changes made since,
however long its history. A snapshot is a pickle of moto's objects: only the lab process that runs
the same moto and labkit reads it, from the lab's owner-only state directory; the journal's header
names it with its checksum, and one from another moto version is never loaded.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

PROTOCOL = 5


class SnapshotUnusable(Exception):
    """This state cannot be snapshotted, or this snapshot cannot be loaded; str() says why."""


class _Pickler(pickle.Pickler):
    """Pickles the lab's subclasses of moto's backends by reference (labkit.labprocess.motofixes.subclass)."""

    def __init__(self, file: io.BytesIO, installed: dict[str, type]) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self.installed = {cls: service for service, cls in installed.items()}

    def reducer_override(self, obj: Any) -> Any:
        service = self.installed.get(obj) if isinstance(obj, type) else None
        if service is not None:
            from labkit.labprocess.motofixes.subclass import installed_class

            return installed_class, (service,)
        return NotImplemented


def _in_use() -> dict[str, Any]:
    """moto's BackendDicts that hold a backend, by service name."""
    from moto import backends as moto_backends
    from moto.core.base_backend import BackendDict

    get_backend: Any = moto_backends.get_backend  # by any service's name
    found: dict[str, Any] = {}
    in_use: list[Any] = list(BackendDict._instances)  # type: ignore[misc]  # moto's own list of the dicts in use
    for backends in in_use:
        if not len(backends):
            continue
        try:
            same = get_backend(backends.service_name) is backends
        except (KeyError, ValueError, ImportError):
            same = False
        if not same:
            raise SnapshotUnusable(f"moto's {backends.service_name} backends cannot be found again by name")
        found[backends.service_name] = backends
    return found


def dump(extra: dict[str, Any]) -> bytes:
    """The state of every moto backend in use, and `extra` (the lab's own state), as bytes."""
    from labkit.labprocess.motofixes import subclass

    state = {"backends": {name: dict(backends) for name, backends in _in_use().items()}, "extra": extra}
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, subclass.install()).dump(state)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise SnapshotUnusable(f"the lab's state cannot be saved ({error})") from None
    return buffer.getvalue()


def load(data: bytes) -> dict[str, Any]:
    """Put the backends of a snapshot in place of moto's (which must be fresh); returns its `extra`."""
    from moto import backends as moto_backends

    get_backend: Any = moto_backends.get_backend
    try:
        state = pickle.loads(data)  # noqa: S301 - the lab's own file, in its owner-only directory
    except Exception as error:  # noqa: BLE001 - whatever a damaged or foreign pickle raises
        raise SnapshotUnusable(f"the snapshot cannot be loaded ({type(error).__name__}: {error})") from None
    for name, accounts in state["backends"].items():
        backends = get_backend(name)
        backends.clear()
        backends.update(accounts)
        _ = backends[next(iter(accounts))] if accounts else None  # registers it among the dicts in use
    return dict(state["extra"])
