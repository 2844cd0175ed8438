"""The seal by environment (where the host allows no user namespaces, or `labkit up --no-sealed`):
an instance is a shell on this machine, in an environment built from nothing.

- the instance's own home directory (`~/.aws/credentials` written there stays there);
- none of the host's `AWS_*` variables, config or credential files;
- the real `aws` CLI, pointed at the lab by `AWS_ENDPOINT_URL`, with the lab's region in
  `AWS_DEFAULT_REGION` (on Amazon Linux 2023, CLI v2 reads the region from the metadata service;
  the lab's CLI v1 cannot, and without a region it refuses to sign for a custom endpoint);
- `http_proxy` pointing at the lab's metadata service with this instance's credentials, so that
  `curl http://169.254.169.254/...`, botocore and Python reach this instance's metadata service,
  and every other outside address is refused with a message;
- where the kernel offers Landlock, the instance's fence (labkit/seal/landlock.py says what it
  hides and refuses), applied by each command as it starts;
- under each command, outside the fence, a keeper (labkit/seal/keeper.py): whatever the command
  leaves running (`nohup`, a double fork, `setsid`) ends when the instance stops or terminates.

The warm `aws` serves such an instance in a child fenced as the instance whose identity file the
client handed over, under a parent outside the fence that ends what the command left running (`join`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from labkit.protocol import CLI_SERVER_USER_HOME, instance_home, instance_key
from labkit.seal import landlock
from labkit.seal.bin import SYSTEM_PATH, on_host
from labkit.seal.descriptors import close_all
from labkit.seal.keeper import Keeper
from labkit.seal.keeper_process import descendants
from labkit.seal.refused import Refused
from labkit.statedir import LabInfo

PR_SET_CHILD_SUBREAPER = 36


class EnvironmentSeal:
    """An instance sealed by environment, as a command on it starts (labkit/seal/__init__.py: Seal)."""

    def __init__(self, lab_home: Path, info: LabInfo, instance_id: str) -> None:
        self.lab_home, self.info, self.instance_id = lab_home, info, instance_id

    @property
    def home(self) -> str:
        path = instance_home(self.lab_home, self.instance_id)
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    @property
    def path(self) -> str:
        return f"{on_host(self.lab_home)}:{SYSTEM_PATH}"

    def entry(self) -> list[str]:
        return []  # its commands run on this machine

    def keeper(self) -> Keeper:
        """What starts the instance's commands: a keeper, which ends all they start when the instance
        stops, inside its Landlock fence on a host that has Landlock."""
        on_host(self.lab_home)  # what the fence lets the instance run must be there when it is planned
        landlock.identity_of(self.lab_home, self.instance_id)  # what its `aws` proves itself with to the warm one
        fence = landlock.for_instance(self.lab_home, self.instance_id, ports=(self.info.api_port, self.info.imds_port))
        return Keeper(self.lab_home, self.instance_id, self.info, fence)

    def environ(self) -> dict[str, str]:
        """The lab's endpoint, and its metadata service as every address's proxy."""
        info = self.info
        proxy = f"http://{self.instance_id}:{instance_key(info.secret, self.instance_id)}@127.0.0.1:{info.imds_port}"
        return {
            "AWS_ENDPOINT_URL": info.api_url,
            **{name: proxy for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")},
            **{name: "127.0.0.1,localhost" for name in ("no_proxy", "NO_PROXY")},
        }


def fence_of_client(lab_home: str, ports: tuple[int, ...], identity: list[int]) -> landlock.Ruleset | None:
    """For a client of the warm `aws` sealed by environment: the Landlock fence of the instance whose
    identity file it handed over, planned here; None where the kernel has no Landlock. Refused when
    it handed over none that proves an instance."""
    home = Path(lab_home)
    instance = landlock.proven_instance(home, identity[0]) if identity else None
    close_all(identity)
    if instance is None:
        raise Refused("it came from no instance of this lab (the instance's identity file did not come with it)")
    return landlock.build(home, instance, ports=ports, homes=(os.environ.get(CLI_SERVER_USER_HOME, ""),))


def keep_what_it_starts(fenced: landlock.Ruleset | None, held: list[int]) -> None:
    """In a forked child of the warm `aws`, for a client sealed by environment: the command runs in a
    child of this one, inside the fence; this one, outside it (the fence lets the command neither see
    nor signal it), is the subreaper of all the command starts, and once the command ends, ends
    whatever it left running (a daemon started from a credential_process, say), then exits with its
    status."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    command = os.fork()
    if command == 0:
        if fenced is not None:
            fenced.apply()
        return
    close_all(held)  # the client's streams and connection are the command's
    _, status = os.waitpid(command, 0)
    for _ in range(100):
        left = descendants()
        if not left:
            break
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        time.sleep(0.01)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def join(lab_home: str, ports: tuple[int, ...], identity: list[int], held: list[int]) -> None:
    """In a forked child of the warm `aws`: run the command of a client sealed by environment in the
    fence of the instance it proves, under this process (`keep_what_it_starts`); `held`: the client's
    streams and connection."""
    keep_what_it_starts(fence_of_client(lab_home, ports, identity), held)


@dataclass(frozen=True)
class EnvironmentJoin:
    """How the warm `aws` joins the instances sealed by environment that reach it on the lab's
    one socket (labkit/seal/__init__.py: Joins): each client proves its instance by its identity."""

    lab_home: str
    ports: tuple[int, ...]  # the lab's API and metadata ports, all the TCP a fenced command may reach

    def join(self, identity: list[int], held: list[int]) -> None:
        join(self.lab_home, self.ports, identity, held)

    def close(self) -> None:
        """Nothing to close: the instances prove themselves, the server holds nothing of theirs."""
