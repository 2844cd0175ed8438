"""How an instance is sealed: what keeps it a machine of its own, in one of two ways.

    kernel.py       sealed by the kernel (the default, where the host allows user namespaces):
                    its own namespaces, made with `unshare` (where the host allows it: `refusal`),
                    entered with `nsenter`; sandbox_init.py is their PID 1
    environment.py  sealed by environment (the fallback, or `labkit up --no-sealed`): a shell of
                    this machine in an environment built from nothing, fenced by Landlock
    landlock.py     that fence: what such an instance may read, write and reach
    keeper.py       what ends such an instance's commands with it (keeper_process.py: its processes)
    bin.py          the instance's bin directory (`aws`, `python3`, `ec2-metadata`), and SYSTEM_PATH
    refused.py      what a server says to a client it cannot place in its instance

A command on an instance (labkit/instances.py) asks the instance's seal, `of(...)`, what goes before
it to enter the instance (`entry`), what starts it (`keeper`), and the instance's HOME, PATH and own
variables (`home`, `path`, `environ`). The warm `aws` (labkit/labprocess/cliserver.py) joins the
instance of a client that reached one of its sockets through that socket's `Joins`: `KernelJoin`
(the instance's namespaces) or `EnvironmentJoin` (the instance its client proves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from labkit.seal.environment import EnvironmentSeal
from labkit.seal.keeper import Keeper
from labkit.seal.kernel import KernelSeal
from labkit.statedir import LabInfo


class Seal(Protocol):
    """One instance, as a command on it starts, however it is sealed."""

    @property
    def home(self) -> str:
        """The instance's HOME, as its shell sees it."""
        ...

    @property
    def path(self) -> str:
        """The instance's PATH: its bin directory first."""
        ...

    def entry(self) -> list[str]:
        """What goes before a command line to run it on the instance, as ec2-user."""
        ...

    def keeper(self) -> Keeper | None:
        """What starts the instance's commands, if not subprocess itself."""
        ...

    def environ(self) -> dict[str, str]:
        """The instance's variables beyond those of a shell over SSH."""
        ...


class Joins(Protocol):
    """How a server's forked child joins the instance of a client that reached one of its sockets."""

    def join(self, identity: list[int], held: list[int]) -> None:
        """Become part of the client's instance, before any thread starts (raises Refused).
        `identity`: what the client handed over to prove its instance; `held`: its streams and
        connection, the command's from now on."""
        ...

    def close(self) -> None:
        """The socket is gone: let go of what joining needed."""
        ...


def of(lab_home: Path, info: LabInfo, instance_id: str) -> Seal:
    """How the lab in `lab_home`, as `info` says it runs, seals instance `instance_id`."""
    return KernelSeal(info, instance_id) if info.sealed else EnvironmentSeal(lab_home, info, instance_id)
