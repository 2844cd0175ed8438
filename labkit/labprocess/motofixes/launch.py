"""What a launch makes of its AMI and of its ClientToken (two fidelity records of registry.py, as
mixins of the lab's EC2 backend: subclass.py).

AWS: an AMI registered with `ImdsSupport` `v2.0` (every Amazon Linux 2023 AMI is) launches
instances that require IMDSv2 (`HttpTokens` `required`) with a hop limit of 2, unless the launch
itself says otherwise ("Configure the AMI", and "Order of precedence for instance metadata options"
in the EC2 User Guide: the launch's own options first, then the account's defaults, then the AMI).
moto's AMIs carry no `ImdsSupport`, and every launch gets `optional` and 1. And a launch repeated
with the same ClientToken is answered with the first launch's instances (ClientTokenMakesLaunchIdempotent).
"""

from __future__ import annotations

from typing import Any

from labkit.labprocess.motofixes import subclass
from labkit.labprocess.motofixes.fidelity import Backend

IMDS_V2_IMAGES = ("al2023-ami-",)  # the names of the AMIs AWS publishes with ImdsSupport v2.0
REQUIRED_BY_THE_AMI = {"HttpTokens": "required", "HttpPutResponseHopLimit": 2}


class ImdsSupportOfTheImage(Backend):
    """Amazon Linux 2023's AMIs say `ImdsSupport: v2.0`, and a launch without its own `HttpTokens` or
    `HttpPutResponseHopLimit` takes the AMI's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for image in self.amis.values():
            v2 = (image.name or "").startswith(IMDS_V2_IMAGES)
            image.imds_support = "v2.0" if v2 else None  # DescribeImages' ImdsSupport
            image.imds = image.imds_support  # DescribeImageAttribute imdsSupport

    def run_instances(self, image_id: str, count: int, user_data: Any, security_group_names: Any, **kwargs: Any) -> Any:
        image = self.amis.get(image_id)
        if image is not None and getattr(image, "imds_support", None) == "v2.0":
            given = {name: value for name, value in (kwargs.get("metadata_options") or {}).items() if value is not None}
            kwargs["metadata_options"] = {**REQUIRED_BY_THE_AMI, **given}  # the launch's own options win
        return super().run_instances(image_id, count, user_data, security_group_names, **kwargs)


def al2023_requires_imdsv2() -> None:
    subclass.add("ec2", ImdsSupportOfTheImage)


MOTO_DEFAULT_TOKEN = "ABCDE"  # what moto's RunInstances handler passes when the request gives no ClientToken


class ClientTokenMakesLaunchIdempotent(Backend):
    """AWS: RunInstances repeated with the same ClientToken launches nothing new and answers with the
    instances of the first request ("Ensure idempotency in Amazon EC2 API requests"). moto launches
    again. (AWS refuses a repeat whose other parameters differ, IdempotentParameterMismatch: not
    emulated, the first request's instances are returned.)"""

    _repeated: set[str] = set()  # instances a repeated request answered with, until its profile step

    def run_instances(self, image_id: str, count: int, user_data: Any, security_group_names: Any, **kwargs: Any) -> Any:
        token = kwargs.get("client_token")
        if token and token != MOTO_DEFAULT_TOKEN:
            for reservation in self.reservations.values():
                if reservation.instances and reservation.instances[0].client_token == token:
                    self._repeated = {instance.id for instance in reservation.instances}
                    return reservation
        return super().run_instances(image_id, count, user_data, security_group_names, **kwargs)

    def associate_iam_instance_profile(self, instance_id: str, *args: Any, **kwargs: Any) -> Any:
        """moto's RunInstances handler attaches the launch's instance profile once run_instances has
        answered; for a repeated request, the first one did, and nothing is attached again."""
        if instance_id in self._repeated:
            self._repeated = set()
            return self.iam_instance_profile_associations.get(instance_id)
        return super().associate_iam_instance_profile(instance_id, *args, **kwargs)


def client_token_makes_launch_idempotent() -> None:
    subclass.add("ec2", ClientTokenMakesLaunchIdempotent)


class StartsCounted(Backend):
    """Counts each instance's starts after a stop (`lab_starts` on moto's instance), so that the metadata
    service hands an instance started again new role credentials (labkit/labprocess/sessions.py)."""

    def start_instances(self, instance_ids: list[str]) -> Any:
        stopped = {i for i in instance_ids if self.get_instance(i).state == "stopped"}
        started = super().start_instances(instance_ids)
        for instance_id in stopped:
            instance = self.get_instance(instance_id)
            instance.lab_starts = getattr(instance, "lab_starts", 0) + 1
        return started


def started_instances_get_new_credentials() -> None:
    subclass.add("ec2", StartsCounted)
