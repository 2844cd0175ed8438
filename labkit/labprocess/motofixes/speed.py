"""The lab's changes to moto and botocore for speed and memory: where a one-account, one-region lab
can skip work moto does for every partition and every session. Each is a record in registry.py; each
function here is that record's `apply`, run once in the lab process.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from labkit.labprocess.motofixes import subclass
from labkit.labprocess.motofixes.fidelity import LAB_PARTITION, Backend
from labkit.protocol import REGION


def botocore_data_read_once() -> None:
    """botocore's data files decoded once per process (see botodata.py)."""
    from botocore import loaders

    from labkit.labprocess.botodata import read_once

    read_once(loaders)


def only_the_labs_region_of_instance_types() -> None:
    """Speed: read which instance types each location offers for the lab's region only.

    moto decodes ~100 files, one per region and location type, when its EC2 models are first
    imported (0.8 s of a cold start); the lab lives in us-east-1. Must run before that import.
    """
    from moto.utilities import utils

    load_resource = utils.load_resource

    def only_the_labs_region(filename: str, *args: Any, **kwargs: Any) -> Any:
        if "instance_type_offerings" in filename and not filename.rsplit("/", 1)[-1].startswith(REGION + "."):
            return []
        return load_resource(filename, *args, **kwargs)

    setattr(utils, "load_resource", only_the_labs_region)  # noqa: B010


_prepared_policies: list[tuple[str, dict[str, Any]]] = []  # each managed policy's name and fields, parsed once


class ManagedPoliciesOnce(Backend):
    """Speed: parse AWS's ~1,600 managed policies once, and load them into the lab's partition only.

    moto parses them again for every IAM backend it creates, and it creates one per partition
    (aws-cn, aws-us-gov, ...) whenever it looks up which account an access key belongs to:
    about 0.2 s each, after every reset.
    """

    def _init_aws_policies(self) -> list[Any]:
        from moto.iam import models

        if self.region_name != LAB_PARTITION:
            return []
        if not _prepared_policies:
            for name, data in json.loads(models.aws_managed_policies_data).items():
                _prepared_policies.append((name, {
                    "default_version_id": data.get("DefaultVersionId"),
                    "path": data.get("Path"),
                    "document": json.dumps(data.get("Document")),
                    "create_date": datetime.fromisoformat(data["CreateDate"]),
                    "update_date": datetime.fromisoformat(data["UpdateDate"]),
                }))  # fmt: skip
        policy_class: Any = models.AWSManagedPolicy
        return [
            policy_class(name, account_id=self.account_id, region=self.region_name, **fields)
            for name, fields in _prepared_policies
        ]


def managed_policies_once() -> None:
    subclass.add("iam", ManagedPoliciesOnce)


def region_lists_not_kept_per_backend() -> None:
    """Each backend container's region list, which depends only on the service name, remembered
    per service name instead of per container (moto's `functools.cache` on the method kept every
    container alive, with every EC2 backend a reset replaced)."""
    from moto.core.base_backend import AccountSpecificBackend

    regions_of = AccountSpecificBackend._generate_regions.__wrapped__
    known: dict[str, list[str]] = {}

    def _generate_regions(self: Any, service_name: str) -> list[str]:
        if service_name not in known:
            known[service_name] = regions_of(self, service_name)
        return list(known[service_name])

    setattr(AccountSpecificBackend, "_generate_regions", _generate_regions)  # noqa: B010


def subnet_addresses_kept_on_the_subnet() -> None:
    """Each subnet's iterator over its free addresses kept on the subnet itself, not in a
    `functools.cache` on the method that keeps every subnet (and its backend) alive."""
    from moto.ec2.models.subnets import Subnet

    def _base_avail_ip_iterator(self: Any) -> Any:
        if "_free_addresses" not in self.__dict__:
            self._free_addresses = Hosts(self.cidr)
        return self._free_addresses

    setattr(Subnet, "_base_avail_ip_iterator", _base_avail_ip_iterator)  # noqa: B010


class Hosts:
    """The addresses `network.hosts()` gives, in its order, as an iterator a snapshot can save
    (a generator cannot be pickled): in IPv4, every address but the network's and its broadcast
    address; in IPv6, every one but the network's (the subnet-router anycast address)."""

    def __init__(self, network: Any) -> None:
        self.network = network
        count = network.num_addresses
        if count <= 2 and network.prefixlen >= network.max_prefixlen - 1:  # /31, /32, /127, /128: all
            self.next, self.end = 0, count
        else:
            self.next, self.end = 1, count - 1 if network.version == 4 else count

    def __iter__(self) -> Hosts:
        return self

    def __next__(self) -> Any:
        if self.next >= self.end:
            raise StopIteration
        self.next += 1
        return self.network[self.next - 1]
