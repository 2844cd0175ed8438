"""What the Instance Metadata Service holds for one instance: its paths, their values, and the
metadata builds ("versions") each path is served in.

Everything here follows the Amazon EC2 User Guide: "Instance metadata categories" (each category,
when it is present, and the build that released it), "Dynamic data categories", "Retrieve instance
metadata" (the builds listed at `/`, the listing format) and "Work with instance user data". A
category that an instance lacks on AWS (a Spot interruption notice, an Auto Scaling lifecycle
state, an Elastic GPU…) is absent here too, so asking for it gives AWS's plain 404.

The values come from `InstanceFacts`, which `Cloud.instance_facts` reads from the same moto objects
DescribeInstances renders: the metadata service and the EC2 API tell the same story.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from labkit.labprocess.facts import InstanceFacts

# The builds `curl http://169.254.169.254/` lists ("Retrieve instance metadata", "Get the available
# versions of the instance metadata"), oldest first; `latest` follows them.
VERSIONS = (
    "1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
    "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12", "2014-02-25", "2014-11-05",
    "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02", "2018-03-28", "2018-08-17", "2018-09-24",
    "2019-10-01", "2020-10-27", "2021-01-03", "2021-03-23",
)  # fmt: skip
LATEST = "latest"
# A path whose category AWS documents without naming the build that released it (`profile`,
# `hibernation/configured`, `instance-identity/rsa2048`) is served under `latest` only.
UNDATED = None
IAM_SINCE = "2012-01-12"  # iam/info and iam/security-credentials/ (their answers: imds.py)
DYNAMIC_SINCE = "2009-04-04"  # the first build with /dynamic ("Dynamic data categories")
USER_DATA_SINCE = "1.0"
VHOSTMD = '<?xml version="1.0" encoding="UTF-8"?>'  # metrics/vhostmd: "No longer available"

Value = str | bytes | Callable[[], str]


def served(version: str, since: str | None) -> bool:
    """Whether build `version` holds a category released in build `since`."""
    if version == LATEST:
        return True
    return since is not None and since <= version  # builds are 1.0 then ISO dates: they sort as text


@dataclass(frozen=True)
class Entry:
    since: str | None  # the build that released it
    value: Value


@dataclass
class Tree:
    """The leaves under one root (`meta-data` or `dynamic`), by path without the root."""

    leaves: dict[str, Entry] = field(default_factory=dict)
    # Folders whose listing is not their children's names: `public-keys/` lists `0=key-name`,
    # `tags/instance` lists the tag keys in the instance's order.
    listings: dict[str, tuple[str | None, list[str]]] = field(default_factory=dict)

    def put(self, path: str, since: str | None, value: Value) -> None:
        self.leaves[path] = Entry(since, value)

    def leaf(self, path: str, version: str) -> str | bytes | None:
        entry = self.leaves.get(path)
        if entry is None or not served(version, entry.since):
            return None
        return entry.value() if callable(entry.value) else entry.value

    def listing(self, path: str, version: str, extra: Iterable[str] = ()) -> str | None:
        """The folder at `path` ("" for the root) as AWS lists it: one name a line, sub-folders
        ending in `/`, no final line feed; None when there is no such folder in `version`."""
        if path in self.listings:
            since, names = self.listings[path]
            return "\n".join(names) if names and served(version, since) else None
        base = f"{path}/" if path else ""
        children = set(extra)
        for name, entry in self.leaves.items():
            if name.startswith(base) and served(version, entry.since):
                rest = name[len(base) :]
                children.add(rest.split("/")[0] + ("/" if "/" in rest else ""))
        return "\n".join(sorted(children)) if children else None


def meta_data(facts: InstanceFacts) -> Tree:
    """Everything under /latest/meta-data/ but `iam/` (its answers read the role's session)."""
    tree = Tree()
    put = tree.put
    put("ami-id", "1.0", facts.ami_id)
    put("ami-launch-index", "1.0", str(facts.ami_launch_index))
    # "If you used an Amazon EBS-backed AMI to launch the instance, the returned result is unknown."
    put("ami-manifest-path", "1.0", "(unknown)")
    if facts.root_device_name:
        put("block-device-mapping/ami", "2007-12-15", facts.root_device_name)
        put("block-device-mapping/root", "2007-12-15", facts.root_device_name)
    for number, device in enumerate(facts.ebs_devices, start=1):
        put(f"block-device-mapping/ebs{number}", "2007-12-15", device.removeprefix("/dev/"))
    put("events/maintenance/history", "2018-08-17", "[]")  # no completed or canceled events
    put("events/maintenance/scheduled", "2018-08-17", "[]")  # no active events
    put("hibernation/configured", UNDATED, "true" if facts.hibernation_configured else "false")
    put("hostname", "1.0", facts.local_hostname)
    put("instance-action", "2008-09-01", "none")
    put("instance-id", "1.0", facts.instance_id)
    put("instance-life-cycle", "2019-10-01", facts.lifecycle)
    put("instance-type", "2007-08-29", facts.instance_type)
    if facts.kernel_id:
        put("kernel-id", "2008-02-01", facts.kernel_id)
    put("local-hostname", "2007-01-19", facts.local_hostname)
    put("local-ipv4", "1.0", facts.local_ipv4)
    put("metrics/vhostmd", "2011-05-01", VHOSTMD)
    primary = facts.primary_interface
    if primary is not None:
        put("mac", "2011-01-01", primary.mac)
        if primary.ipv6s:
            put("ipv6", "2021-01-03", primary.ipv6s[0])
        if primary.public_ipv4:
            put("public-ipv4", "2007-01-19", primary.public_ipv4)
        if primary.public_hostname:
            put("public-hostname", "2007-01-19", primary.public_hostname)
    _network(tree, facts)
    put("placement/availability-zone", "2008-02-01", facts.availability_zone)
    if facts.availability_zone_id:
        put("placement/availability-zone-id", "2020-08-24", facts.availability_zone_id)
    if facts.placement_group:
        put("placement/group-name", "2020-08-24", facts.placement_group)
    if facts.host_id:
        put("placement/host-id", "2020-08-24", facts.host_id)
    if facts.partition_number is not None:
        put("placement/partition-number", "2020-08-24", str(facts.partition_number))
    put("placement/region", "2020-08-24", facts.region)
    if facts.product_codes:
        put("product-codes", "2007-03-01", "\n".join(facts.product_codes))
    put("profile", UNDATED, "default-hvm")
    if facts.key_name and facts.public_key:
        put("public-keys/0/openssh-key", "1.0", _openssh_key(facts.public_key, facts.key_name))
        tree.listings["public-keys"] = ("1.0", [f"0={facts.key_name}"])
        tree.listings["public-keys/0"] = ("1.0", ["openssh-key"])
    if facts.ramdisk_id:
        put("ramdisk-id", "2007-10-10", facts.ramdisk_id)
    put("reservation-id", "1.0", facts.reservation_id)
    put("security-groups", "1.0", "\n".join(facts.security_groups))
    put("services/domain", "2014-02-25", "amazonaws.com")
    put("services/partition", "2015-10-20", "aws")
    if facts.instance_metadata_tags == "enabled" and facts.tags:
        for key, value in facts.tags:
            put(f"tags/instance/{key}", "2021-03-23", value)
        tree.listings["tags/instance"] = ("2021-03-23", [key for key, _ in facts.tags])
    return tree


def _network(tree: Tree, facts: InstanceFacts) -> None:
    """network/interfaces/macs/<mac>/…, one folder for each attached network interface."""
    for eni in facts.interfaces:
        base = f"network/interfaces/macs/{eni.mac}"

        def put(name: str, since: str, value: str, base: str = base) -> None:
            tree.put(f"{base}/{name}", since, value)

        put("device-number", "2011-01-01", str(eni.device_number))
        put("interface-id", "2011-01-01", eni.interface_id)
        if eni.public_ipv4:
            put(f"ipv4-associations/{eni.public_ipv4}", "2011-01-01", eni.private_ipv4s[0])
            put("public-ipv4s", "2011-01-01", eni.public_ipv4)
        if eni.public_hostname:
            put("public-hostname", "2011-01-01", eni.public_hostname)
        if eni.ipv6s:
            put("ipv6s", "2016-06-30", "\n".join(eni.ipv6s))
        put("local-hostname", "2011-01-01", eni.local_hostname)
        put("local-ipv4s", "2011-01-01", "\n".join(eni.private_ipv4s))
        put("mac", "2011-01-01", eni.mac)
        put("network-card-index", "2020-11-01", str(eni.network_card_index))
        put("owner-id", "2011-01-01", eni.owner_id)
        put("security-group-ids", "2011-01-01", "\n".join(eni.security_group_ids))
        put("security-groups", "2011-01-01", "\n".join(eni.security_groups))
        put("subnet-id", "2011-01-01", eni.subnet_id)
        put("subnet-ipv4-cidr-block", "2011-01-01", eni.subnet_ipv4_cidr_block)
        if eni.subnet_ipv6_cidr_blocks:
            put("subnet-ipv6-cidr-blocks", "2016-06-30", "\n".join(eni.subnet_ipv6_cidr_blocks))
        put("vpc-id", "2011-01-01", eni.vpc_id)
        put("vpc-ipv4-cidr-block", "2011-01-01", eni.vpc_ipv4_cidr_blocks[0])
        put("vpc-ipv4-cidr-blocks", "2016-06-30", "\n".join(eni.vpc_ipv4_cidr_blocks))
        if eni.vpc_ipv6_cidr_blocks:
            put("vpc-ipv6-cidr-blocks", "2016-06-30", "\n".join(eni.vpc_ipv6_cidr_blocks))


def _openssh_key(public_key: str, key_name: str) -> str:
    """The key as AWS serves it: the public key, then the key pair's name."""
    fields = public_key.split()
    return " ".join(fields[:2] + [key_name]) if len(fields) >= 2 else public_key


def dynamic(facts: InstanceFacts, identity: Callable[[str], str]) -> Tree:
    """Everything under /latest/dynamic/; `identity(kind)` makes the identity document ("document")
    and its signatures ("pkcs7", "signature", "rsa2048") when one is asked for."""
    tree = Tree()
    tree.put("fws/instance-monitoring", DYNAMIC_SINCE, facts.monitoring)
    for kind in ("document", "pkcs7", "signature"):
        tree.put(f"instance-identity/{kind}", DYNAMIC_SINCE, partial(identity, kind))
    tree.put("instance-identity/rsa2048", UNDATED, partial(identity, "rsa2048"))
    return tree
