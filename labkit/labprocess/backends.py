"""The emulated cloud: moto's backends inside the lab process, and what labkit adds to them.

moto plays IAM, STS and EC2 with authorization switched on: every request must be signed by a
known identity and is checked against that identity's policies. `Cloud` ties the lab together: it
owns the lab's bootstrap (the administrator who plays "the person in the console", a few ordinary
users), the reset, and moto's ids drawn from one seed; it includes the recovery protocol (every
change journaled, the lab brought back after a crash: recovery.py) and the role sessions the
metadata service hands out (sessions.py), and reads the facts about an instance (facts.py).

    recovery.py  changes journaled, undone, snapshotted, and brought back
    facts.py     what the metadata service reads about an instance
    sessions.py  the role sessions of the instances

Only the lab process imports this module, after `configure_moto()`.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from labkit.labprocess import facts
from labkit.labprocess.facts import InstanceFacts
from labkit.labprocess.journal import Journal, why
from labkit.labprocess.recovery import ChangeNotSaved, Recovery, moto_version, say
from labkit.labprocess.sessions import RoleSession, RoleSessions, utcnow  # RoleSession: as older snapshots name it
from labkit.protocol import ACCOUNT_ID, INSTANCES_DIR, REGION

ADMIN_USER = "admin"
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
STARTER_USERS = ("alice", "bob", "carol")

# Every lab draws moto's ids from this seed (secrets never follow it): a student's own run of the
# series and `labkit reset --to NN` then give the same instance, role and profile ids.
LAB_SEED = 2000


def configure_moto() -> None:
    """Set moto's switches; must run before moto is first imported in this process."""
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "false")


class Cloud(Recovery, RoleSessions):
    """moto's backends for the lab's one account and region, plus the lab's own state."""

    def __init__(
        self,
        home: Path,
        admin_keys: tuple[str, str],
        *,
        clock: Callable[[], datetime] = utcnow,
        journal: Journal | None = None,
    ) -> None:
        self.home = home
        self.admin_keys = admin_keys
        self.clock = clock
        self.journal = journal
        self.lock = threading.RLock()
        self._sessions: dict[str, RoleSession] = {}
        self._seed = LAB_SEED
        self._streams: dict[str, Any] = {}
        self._replay_request: Callable[[dict[str, Any]], int] | None = None
        self.changes = 0  # since the last reset, snapshots included
        self.problem = ""  # the last time a change could not be saved, and why; '' when all were
        self.broken = ""  # why the lab's state no longer matches its journal; then it refuses changes

    # -- moto's backends -------------------------------------------------------------------
    @property
    def iam(self) -> Any:
        from moto.backends import get_backend

        return get_backend("iam")[ACCOUNT_ID]["aws"]

    @property
    def ec2(self) -> Any:
        from moto.backends import get_backend

        return get_backend("ec2")[ACCOUNT_ID][REGION]

    @property
    def sts(self) -> Any:
        from moto.backends import get_backend

        return get_backend("sts")[ACCOUNT_ID]["aws"]

    # -- a new lab ---------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """A fresh lab: the administrator, a few ordinary users, the default VPC and AMIs."""
        with self.lock:
            iam = self.iam
            iam.create_user(REGION, ADMIN_USER)
            iam.attach_user_policy(ADMIN_POLICY_ARN, ADMIN_USER)
            key = iam.create_access_key(ADMIN_USER)  # motofixes: admin_keys_chosen_by_the_lab
            del iam.access_keys[key.physical_resource_id]
            key.access_key_id, key.secret_access_key = self.admin_keys
            iam.access_keys[key.physical_resource_id] = key
            for name in STARTER_USERS:
                iam.create_user(REGION, name)
            _ = self.ec2  # creating the EC2 backend makes the default VPC, subnets and moto's AMIs

    def reset(self, *, seed: int = LAB_SEED) -> None:
        """Wipe every backend and the instances' home directories, then bootstrap again.

        moto's ids (instances, roles, profiles) then follow from the seed, so that the same steps
        yield the same ids (see `_drawing`). Secrets never follow it. The journal starts anew.
        """
        with self.lock:
            if self.journal is not None:  # first on disk: a crash right after comes back as a fresh lab
                try:
                    self.journal.start({"seed": seed, "admin": list(self.admin_keys), "moto": moto_version()})
                except OSError as error:
                    self.problem = (
                        f"the lab could not start a new journal ({why(error)}), so it was not reset; "
                        f"free space where the lab keeps its state ({self.home}), then try again"
                    )
                    say(f"labkit: {self.problem}.")
                    raise ChangeNotSaved(self.problem) from None
            shutil.rmtree(self.home / INSTANCES_DIR, ignore_errors=True)
            self._fresh(seed)
            self.changes, self.broken = 0, ""

    def _fresh(self, seed: int) -> None:
        """Fresh backends, seeded and bootstrapped; the instances' home directories are left alone."""
        from moto.moto_api._internal import mock_random
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()  # motofixes: ids_follow_the_lab_seed, as in _drawing
        self._sessions.clear()
        self._seed, self._streams = seed, {}
        mock_random.seed(seed)
        self.bootstrap()

    # -- what the metadata service reads (facts.py) ------------------------------------------
    def running_instances(self) -> dict[str, tuple[str, str]]:
        """The running instances: id → (private address, name of the AMI it was launched from), what
        their sandboxes are made of (labprocess/sandbox.py)."""
        with self.lock:
            return facts.running_instances(self.ec2)

    def instance_facts(self, instance_id: str) -> InstanceFacts | None:
        """The facts about one instance, or None when the lab has no such instance."""
        with self.lock:
            return facts.instance_facts(self.ec2, self.iam, instance_id)
