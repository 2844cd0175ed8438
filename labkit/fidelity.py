"""Where moto differs from AWS in what the lesson shows, and the lab's corrections.

Each correction is small, applied once in the lab process after moto is imported, and says
which behaviour of AWS it restores. Everything else is moto as it is.
"""

from __future__ import annotations

from typing import Any

_applied = False


def _default_subnet_address() -> None:
    """An instance launched without a subnet gets an address in its AZ's default subnet.

    On AWS it is 172.31.x.x (the default VPC); moto keeps an EC2-Classic random 10.x address
    while it places the network interface in the default subnet.
    """
    from moto.ec2.models.instances import Instance

    original = Instance.prep_nics

    def prep_nics(self: Any, nic_spec: Any, private_ip: str | None = None, **kwargs: Any) -> None:
        if not self._subnet_id and not nic_spec and private_ip is None:
            subnet = self.ec2_backend.get_default_subnets().get(self._placement.zone)
            if subnet is not None:
                private_ip = subnet.get_available_subnet_ip(instance=self)
        original(self, nic_spec, private_ip, **kwargs)

    Instance.prep_nics = prep_nics


def apply() -> None:
    """Apply every correction (idempotent)."""
    global _applied
    if not _applied:
        _default_subnet_address()
        _applied = True
