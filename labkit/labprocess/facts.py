"""The facts the metadata service reads about an instance (labkit/labprocess/imds.py), taken from
the same moto objects DescribeInstances renders: `instance_facts`, and `running_instances` (what the
sealed instances' sandboxes are made of). Callers hold the lab's lock (backends.Cloud does).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from labkit.protocol import ACCOUNT_ID, REGION, private_dns_name


def _known(value: str | None) -> str | None:
    """moto's value, or None where it has none (moto writes a missing kernel id as "None")."""
    return value if value and value != "None" else None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class InterfaceFacts:
    """One network interface attached to an instance, as DescribeInstances shows it."""

    mac: str
    interface_id: str
    device_number: int
    owner_id: str
    private_ipv4s: tuple[str, ...]  # the primary address first
    public_ipv4: str | None  # associated with the primary private address
    public_hostname: str | None  # None when the VPC's enableDnsHostnames is off
    ipv6s: tuple[str, ...]
    security_groups: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    subnet_id: str
    subnet_ipv4_cidr_block: str
    subnet_ipv6_cidr_blocks: tuple[str, ...]
    vpc_id: str
    vpc_ipv4_cidr_blocks: tuple[str, ...]  # the primary block first
    vpc_ipv6_cidr_blocks: tuple[str, ...]
    network_card_index: int = 0

    @property
    def local_hostname(self) -> str:
        return private_dns_name(self.private_ipv4s[0])


@dataclass(frozen=True)
class InstanceFacts:
    """What the metadata service may say about one instance (the fields after `role_trust_policy`
    have defaults, so that a test can name only what it needs)."""

    instance_id: str
    state: str
    ami_id: str
    instance_type: str
    local_ipv4: str
    availability_zone: str
    security_groups: tuple[str, ...]  # the names of the primary interface's groups
    http_tokens: str
    http_endpoint: str
    profile_arn: str | None
    profile_id: str | None
    role_name: str | None
    role_arn: str | None
    role_trust_policy: str | None
    account_id: str = ACCOUNT_ID
    reservation_id: str = ""
    ami_launch_index: int = 0
    architecture: str = "x86_64"
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    product_codes: tuple[str, ...] = ()
    launch_time: datetime | None = None  # DescribeInstances' LaunchTime, UTC
    availability_zone_id: str = ""
    placement_group: str = ""
    starts: int = 0  # how often it was started again after a stop (motofixes/launch.py, StartsCounted)
    host_id: str | None = None
    partition_number: int | None = None
    lifecycle: str = "on-demand"  # or "spot"
    monitoring: str = "disabled"
    hibernation_configured: bool = False
    root_device_name: str = ""
    ebs_devices: tuple[str, ...] = ()  # the other EBS volumes' device names, as mapped at launch
    interfaces: tuple[InterfaceFacts, ...] = ()  # by device number: the primary first
    key_name: str | None = None
    public_key: str | None = None  # the key pair's public key, OpenSSH format
    user_data: bytes | None = None  # decoded, as given to RunInstances
    tags: tuple[tuple[str, str], ...] = ()
    instance_metadata_tags: str = "disabled"
    http_protocol_ipv6: str = "disabled"

    @property
    def region(self) -> str:
        return REGION

    @property
    def local_hostname(self) -> str:
        return private_dns_name(self.local_ipv4)

    @property
    def primary_interface(self) -> InterfaceFacts | None:
        return self.interfaces[0] if self.interfaces else None


def running_instances(ec2: Any) -> dict[str, tuple[str, str]]:
    """The running instances: id → (private address, name of the AMI it was launched from), what
    their sandboxes are made of (labprocess/sandbox.py), from EC2's backend `ec2`."""
    return {
        inst.id: (inst.private_ip, getattr(ec2.amis.get(inst.image_id), "name", "") or "")
        for reservation in ec2.reservations.values()
        for inst in reservation.instances
        if inst._state.name == "running"
    }


def instance_facts(ec2: Any, iam: Any, instance_id: str) -> InstanceFacts | None:
    """The facts about one instance, from moto's EC2 and IAM backends, or None when the lab has no
    such instance."""
    from moto.ec2.exceptions import InvalidInstanceIdError
    from moto.iam.exceptions import NotFoundException

    try:
        inst = ec2.get_instance(instance_id)
    except InvalidInstanceIdError:
        return None
    profile = role = None
    association = ec2.iam_instance_profile_associations.get(instance_id)
    if association is not None:
        try:  # read the profile afresh: it may have lost its role or been deleted
            profile = iam.get_instance_profile(association.iam_instance_profile.name)
        except NotFoundException:
            profile = None
    if profile is not None and profile.roles:
        role = profile.roles[0]
    options = inst.metadata_options
    interfaces = tuple(_interface_facts(ec2, eni) for _, eni in sorted(inst.nics.items()))
    zones = ec2.describe_availability_zones(zone_names=[inst.availability_zone])
    reservation = next((r.id for r in ec2.reservations.values() if inst in r.instances), "")
    key_pair = ec2.key_pairs.get(inst.key_name) if inst.key_name else None
    hibernation = inst.hibernation_options or {}
    return InstanceFacts(
        instance_id=inst.id,
        state=inst._state.name,
        ami_id=inst.image_id,
        instance_type=inst.instance_type,
        local_ipv4=inst.private_ip,
        availability_zone=inst.availability_zone,
        security_groups=interfaces[0].security_groups if interfaces else (),
        http_tokens=options.http_tokens,
        http_endpoint=options.http_endpoint,
        profile_arn=profile.arn if profile else None,
        profile_id=profile.id if profile else None,
        role_name=role.name if role else None,
        role_arn=role.arn if role else None,
        role_trust_policy=role.assume_role_policy_document if role else None,
        account_id=inst.owner_id,
        reservation_id=reservation,
        ami_launch_index=int(inst.ami_launch_index or 0),
        architecture=inst.architecture or "x86_64",
        kernel_id=_known(inst.kernel or inst.kernel_id),
        ramdisk_id=_known(inst.ramdisk),
        product_codes=tuple(str(code) for code in inst.product_codes),
        launch_time=inst.launch_time.replace(tzinfo=UTC),
        availability_zone_id=zones[0].zone_id if zones else "",
        placement_group=inst.placement.group_name or "",
        starts=getattr(inst, "lab_starts", 0),
        host_id=inst.placement.host_id or None,
        partition_number=getattr(inst.placement, "partition_number", None),
        lifecycle=inst.lifecycle or "on-demand",
        monitoring="enabled" if inst.monitored else "disabled",
        hibernation_configured=bool(hibernation.get("Configured")),
        root_device_name=inst.root_device_name or "",
        ebs_devices=_ebs_devices(inst),
        interfaces=interfaces,
        key_name=inst.key_name or None,
        public_key=_text(key_pair.material_public) if key_pair is not None else None,
        user_data=base64.b64decode(inst.user_data.as_bytes()) if inst.user_data is not None else None,
        tags=tuple((tag["key"], tag["value"]) for tag in inst.get_tags()),
        instance_metadata_tags=options.instance_metadata_tags,
        http_protocol_ipv6=options.http_protocol_ipv6,
    )


def _interface_facts(ec2: Any, eni: Any) -> InterfaceFacts:
    """One attached network interface, from the same moto objects DescribeInstances renders."""
    subnet = eni.subnet
    vpc = ec2.get_vpc(subnet.vpc_id)
    groups = list(eni.group_set)
    if isinstance(eni.group_set, set):  # moto merges the instance's groups in as a set
        groups.sort(key=lambda group: group.id)
    addresses = [eni.private_ip_address]
    addresses += [a["PrivateIpAddress"] for a in eni.private_ip_addresses if a["PrivateIpAddress"] not in addresses]
    public = eni.public_ip or None
    vpc_blocks = [vpc.cidr_block]
    vpc_blocks += [
        c["cidr_block"]
        for c in vpc.get_cidr_block_association_set()
        if c["cidr_block_state"]["state"] == "associated" and c["cidr_block"] not in vpc_blocks
    ]
    return InterfaceFacts(
        mac=eni.mac_address,
        interface_id=eni.id,
        device_number=int(eni.device_index or 0),
        owner_id=eni.owner_id,
        private_ipv4s=tuple(addresses),
        public_ipv4=public,
        # the name DescribeInstances gives the instance (moto's ENI association says ip-….ec2.internal)
        public_hostname=f"ec2-{public.replace('.', '-')}.compute-1.amazonaws.com"
        if public and vpc.enable_dns_hostnames
        else None,
        ipv6s=tuple(eni.ipv6_addresses),
        security_groups=tuple(group.name for group in groups),
        security_group_ids=tuple(group.id for group in groups),
        subnet_id=subnet.id,
        subnet_ipv4_cidr_block=subnet.cidr_block,
        subnet_ipv6_cidr_blocks=tuple(
            a["ipv6CidrBlock"]
            for a in subnet.ipv6_cidr_block_associations.values()
            if a["ipv6CidrBlockState"].get("State") == "associated"
        ),
        vpc_id=vpc.id,
        vpc_ipv4_cidr_blocks=tuple(vpc_blocks),
        vpc_ipv6_cidr_blocks=tuple(
            c["cidr_block"]
            for c in vpc.get_cidr_block_association_set(ipv6=True)
            if c["cidr_block_state"]["state"] == "associated"
        ),
    )


def _ebs_devices(inst: Any) -> tuple[str, ...]:
    """The device names of the EBS volumes other than the root one that were attached at
    launch (AWS: "only available in metadata if they were present at launch time")."""
    mapping = inst.get_block_device_mapping
    names = [name for name, _ in mapping]
    # moto attaches a default root volume at /dev/sda1 whatever the AMI's root device name
    root = inst.root_device_name if inst.root_device_name in names else "/dev/sda1"
    launched = inst.launch_time + timedelta(seconds=1)
    return tuple(
        name for name, block in mapping if name != root and block.attach_time and block.attach_time <= launched
    )
