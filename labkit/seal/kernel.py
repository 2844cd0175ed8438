"""The seal by the kernel (the default, where the host allows user namespaces): an instance is a
machine of its own.

The lab process keeps a sandbox per running instance (labkit/labprocess/sandbox.py), whose PID 1,
labkit/seal/sandbox_init.py, makes the machine in its namespaces. What a student runs enters those
namespaces with util-linux `nsenter` (`entry`), then the nested user namespace where the lab's user
is ec2-user (uid 1000), without any capability, in /home/ec2-user, with an environment as over SSH
to Amazon Linux 2023: no endpoint, no proxy, nothing of the lab's. The lab tells this client (the
student's own) which processes hold an instance's namespaces. The warm `aws` joins them by the
descriptors the sandbox handed it (`join`), never by a process id.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.control import call
from labkit.errors import LabError
from labkit.seal.bin import SYSTEM_PATH
from labkit.seal.descriptors import close_all
from labkit.seal.refused import Refused
from labkit.seal.sandbox_init import CLONE_NEWUSER

if TYPE_CHECKING:
    from labkit.seal.keeper import Keeper
    from labkit.statedir import LabInfo

SEALED_HOME = "/home/ec2-user"
# the namespaces a sandbox is made in, as util-linux `unshare` makes them (sandbox_init.NAMESPACES: the same, joined)
UNSHARE = ["--user", "--map-root-user", "--mount", "--uts", "--ipc", "--net", "--pid", "--fork", "--mount-proc"]


def unshared(program: list[str]) -> list[str]:
    """The command that runs `program` as PID 1 of new namespaces, mounts private to them."""
    return ["unshare", *UNSHARE, "--propagation", "private", *program]


def refusal() -> str | None:
    """Why this host cannot seal instances in namespaces, in one line; None when it can."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "util-linux's unshare and nsenter are not installed"
    try:
        limit = int(Path("/proc/sys/user/max_user_namespaces").read_text())
    except (OSError, ValueError):
        limit = -1
    if limit == 0:
        return "user namespaces are switched off here (user.max_user_namespaces is 0)"
    tried = subprocess.run(["unshare", *UNSHARE, "true"], capture_output=True, text=True, env={"PATH": os.defpath})
    if tried.returncode != 0:
        said = (tried.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"this host does not let an unprivileged user make namespaces ({said})"
    return None


def entry(info: LabInfo, instance_id: str) -> list[str]:
    """The command that runs what follows it inside a sealed instance, as ec2-user: `nsenter` into
    the namespaces of its sandbox (the lab says which process holds them), then into the nested
    one where the lab's user is ec2-user, without any capability."""
    try:
        where = call(info, f"sandbox?instance={urllib.parse.quote(instance_id)}", timeout=30)
    except urllib.error.HTTPError as error:
        said = json.load(error).get("error", str(error))
        raise LabError(f"Instance {instance_id} cannot be entered: {said}.") from None
    except (OSError, ValueError) as error:
        raise LabError(f"The lab (pid {info.pid}) did not say where instance {instance_id} runs: {error}.") from None
    outer = ["nsenter", f"--target={int(where['init'])}", "--user", "--mount", "--uts", "--ipc", "--net", "--pid"]
    nested = ["nsenter", f"--user=/proc/{int(where['nested'])}/ns/user", f"--wd={SEALED_HOME}"]
    return [*outer, "--preserve-credentials", "--", *nested, "--preserve-credentials", "--"]


class KernelSeal:
    """An instance sealed by the kernel, as a command on it starts (labkit/seal/__init__.py: Seal)."""

    home = SEALED_HOME
    path = SYSTEM_PATH

    def __init__(self, info: LabInfo, instance_id: str) -> None:
        self.info, self.instance_id = info, instance_id

    def entry(self) -> list[str]:
        return entry(self.info, self.instance_id)

    def keeper(self) -> Keeper | None:
        return None  # its processes end with its PID 1

    def environ(self) -> dict[str, str]:
        return {}  # nothing of the lab's: the instance reaches it as EC2 reaches AWS


def join(namespaces: list[int]) -> None:
    """In a forked child of the warm `aws`, for a client of an instance sealed by the kernel: join
    its sandbox's namespaces as its `aws` process is in them (the sandbox's user namespace, which the
    lab's user owns; the others of sandbox_init.NAMESPACES; then the nested one where the lab's user is ec2-user),
    with no capability left, then run the command in a child in its PID namespace (`ps` shows it,
    /proc/self is its own, Ctrl-C reaches it, and it ends with the instance); this one waits for it,
    silent. The descriptors came from the sandbox itself: nothing the client sends chooses them."""
    libc = ctypes.CDLL(None, use_errno=True)
    outer, *others, nested = namespaces
    for fd, kind in [(outer, CLONE_NEWUSER), *((fd, 0) for fd in others), (nested, CLONE_NEWUSER)]:
        if libc.setns(fd, kind) != 0:
            number = ctypes.get_errno()
            raise Refused(f"the instance could not be entered ({os.strerror(number)}); it may have just stopped")
        os.close(fd)
    # joining a user namespace grants every capability in it; ec2-user's `aws` holds none
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
        raise OSError(ctypes.get_errno(), "cannot drop the capabilities of the instance's aws")
    try:
        command = os.fork()
    except OSError:  # its PID 1 has gone: the instance is stopping
        raise Refused("the instance is stopping") from None
    if command:
        _, status = os.waitpid(command, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


@dataclass
class KernelJoin:
    """How the warm `aws` joins one instance sealed by the kernel (labkit/seal/__init__.py: Joins):
    by the descriptors of its sandbox's namespaces, which the sandbox itself handed over
    (sandbox_init.NAMESPACES, then the nested user namespace). A client proves nothing: the socket
    it reached is inside that instance alone."""

    namespaces: list[int]

    def join(self, identity: list[int], held: list[int]) -> None:
        close_all(identity)
        join(self.namespaces)

    def close(self) -> None:
        close_all(self.namespaces)
        self.namespaces = []
