"""Which run of an instance is current: what the keepers of its commands ask (labkit/seal/keeper.py).

    GET /_labkit/run?instance=ID                    the current run, at once
    GET /_labkit/run?instance=ID&since=RUN&wait=S   the same, once it is no longer RUN (or after S seconds)

A run is the time an instance spends running, from its launch or a StartInstances to the next
StopInstances, RebootInstances (a reboot ends every process, as on AWS) or TerminateInstances; a
reset or a restart of the lab begins new ones. It is named by a token the lab makes the first time
it is asked, kept with moto's record of the change that began the run: moto gives an instance a new
`state_reason` object at each of those changes (tests/test_instance_lifetime.py checks that it
still does). While the instance is not running, the answer is "". The lab keeps nothing else: a
token goes with the object it was kept with.
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from typing import Any

LONGEST = 60.0  # seconds a question may be held
POLL = 0.05  # seconds between two looks at the instance while a question is held

_TOKENS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def current(cloud: Any, instance_id: str) -> str:
    """The token of the instance's current run; "" while it is not running (or there is no such instance)."""
    from moto.ec2.exceptions import InvalidInstanceIdError

    with cloud.lock:
        try:
            instance = cloud.ec2.get_instance(instance_id)
        except InvalidInstanceIdError:
            return ""
        if instance._state.name != "running":
            return ""
        return _TOKENS.setdefault(instance.state_reason, secrets.token_hex(8))


def after(cloud: Any, instance_id: str, since: str | None, wait: float, stop: threading.Event) -> str:
    """The current run, once it is not `since` (at once when `since` is None), or after `wait`
    seconds (at most LONGEST), or when the lab stops."""
    deadline = time.monotonic() + max(0.0, min(wait, LONGEST))
    while True:
        run = current(cloud, instance_id)
        if since is None or run != since or time.monotonic() >= deadline or stop.wait(POLL):
            return run
