"""The lab's cloud in-process: instance facts and the role sessions handed to instances."""

from __future__ import annotations

import gc
import json
import weakref
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import labkit
from conftest import ROLE, create_role
from labkit.catalogue import AL2023
from labkit.labprocess import motofixes
from labkit.labprocess.backends import Cloud, configure_moto
from labkit.labprocess.keys import new_admin_keys
from labkit.labprocess.sessions import REFRESH_BEFORE, ROLE_SESSION_SECONDS

EC2_TRUST = json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                       "Action": "sts:AssumeRole"}]})  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, clock: Clock) -> Cloud:
    configure_moto()
    motofixes.apply()
    cloud = Cloud(Path(tmp_path_factory.mktemp("cloud")), new_admin_keys(), clock=clock)
    cloud.bootstrap()
    return cloud


def add_role(cloud: Cloud, name: str, trust: str = EC2_TRUST) -> None:
    cloud.iam.create_role(name, trust, "/", None, "", [], None)
    cloud.iam.create_instance_profile(name, "/", role_names=[name])


def run_instance(cloud: Cloud, profile: str | None = None) -> str:
    image = "ami-03c3da4cfa8e8943a"
    instance = cloud.ec2.run_instances(
        image, 1, None, [], instance_type="t3.micro", is_instance_type_default=False, tags={}, nics=[]
    ).instances[0]
    if profile:
        cloud.ec2.associate_iam_instance_profile(instance.id, iam_instance_profile_name=profile)
    return str(instance.id)


def test_bootstrap_makes_the_administrator_and_ordinary_users(cloud: Cloud) -> None:
    users = {u.name: u for u in cloud.iam.list_users("/", None, None)}
    assert sorted(users) == ["admin", "alice", "bob", "carol"]
    assert [k.access_key_id for k in users["admin"].access_keys] == [cloud.admin_keys[0]]
    assert cloud.ec2.get_default_vpc() is not None


def test_facts_of_an_instance_without_a_role(cloud: Cloud) -> None:
    facts = cloud.instance_facts(run_instance(cloud))
    assert facts is not None
    assert facts.state == "running" and facts.local_ipv4.startswith("172.31.")
    assert (facts.profile_arn, facts.role_name, facts.http_tokens, facts.http_endpoint) == (
        None,
        None,
        "required",  # launched from Amazon Linux 2023, whose AMI says ImdsSupport v2.0
        "enabled",
    )
    assert cloud.instance_facts("i-00000000000000000") is None


def test_a_role_session_is_cached_then_replaced_before_it_expires(cloud: Cloud, clock: Clock) -> None:
    add_role(cloud, "Cached")
    facts = cloud.instance_facts(run_instance(cloud, "Cached"))
    assert facts is not None and facts.role_name == "Cached"
    first = cloud.role_session(facts)
    assert first is not None and first.access_key_id.startswith("ASIA")
    assert first.expiration - first.last_updated == timedelta(seconds=ROLE_SESSION_SECONDS)
    clock.now += timedelta(hours=1)
    assert cloud.role_session(facts) == first
    clock.now = first.expiration - REFRESH_BEFORE
    second = cloud.role_session(facts)
    assert second is not None and second.access_key_id != first.access_key_id
    assert first.expiration - clock.now >= timedelta(minutes=5)  # new ones at least 5 minutes before expiry
    assert second.last_updated == clock.now


def test_the_session_is_named_after_the_instance(cloud: Cloud) -> None:
    add_role(cloud, "Named")
    instance_id = run_instance(cloud, "Named")
    facts = cloud.instance_facts(instance_id)
    assert facts is not None
    session = cloud.role_session(facts)
    assert session is not None
    assumed: Any = cloud.sts.get_assumed_role_from_access_key(session.access_key_id)
    assert assumed.arn == f"arn:aws:sts::123456789012:assumed-role/Named/{instance_id}"


def test_no_session_when_ec2_may_not_assume_the_role(cloud: Cloud) -> None:
    add_role(cloud, "NotForEc2", trust=EC2_TRUST.replace("ec2.amazonaws.com", "lambda.amazonaws.com"))
    facts = cloud.instance_facts(run_instance(cloud, "NotForEc2"))
    assert facts is not None and facts.role_name == "NotForEc2"
    assert cloud.role_session(facts) is None


def test_a_profile_that_lost_its_role_gives_no_role(cloud: Cloud) -> None:
    add_role(cloud, "Emptied")
    instance_id = run_instance(cloud, "Emptied")
    cloud.iam.remove_role_from_instance_profile("Emptied", "Emptied")
    facts = cloud.instance_facts(instance_id)
    assert facts is not None and facts.profile_arn is not None and facts.role_name is None


def test_metadata_options_change_only_what_is_named(cloud: Cloud) -> None:
    instance_id = run_instance(cloud)
    cloud.ec2.modify_instance_metadata_options(instance_id, http_tokens="required")
    facts = cloud.instance_facts(instance_id)
    assert facts is not None and (facts.http_tokens, facts.http_endpoint) == ("required", "enabled")


def test_instances_in_one_subnet_get_successive_addresses(cloud: Cloud) -> None:
    first, second = (cloud.instance_facts(run_instance(cloud)) for _ in range(2))
    assert first is not None and second is not None
    assert first.local_ipv4.startswith("172.31.") and second.local_ipv4.startswith("172.31.")
    assert first.local_ipv4 != second.local_ipv4


def test_a_reset_frees_the_backends_it_replaces(cloud: Cloud) -> None:
    run_instance(cloud)  # draws an address from a subnet, as a student's launch does
    replaced = [weakref.ref(cloud.ec2), weakref.ref(cloud.iam)]
    replaced_subnets = [weakref.ref(subnet) for subnet in cloud.ec2.get_default_subnets().values()]
    for _ in range(3):
        cloud.reset(seed=4)
    gc.collect()
    assert [ref() for ref in replaced + replaced_subnets] == [None] * (2 + len(replaced_subnets))
    assert sorted(u.name for u in cloud.iam.list_users("/", None, None)) == ["admin", "alice", "bob", "carol"]


def test_botocore_data_is_decoded_once_per_process(cloud: Cloud) -> None:
    from botocore import loaders
    from botocore.session import Session

    decoded: list[str] = []
    original = json.loads

    def counting(text: Any, *args: Any, **kwargs: Any) -> Any:
        decoded.append("x")
        return original(text, *args, **kwargs)

    first = Session().get_service_data("ec2")
    loaders.json.loads = counting  # type: ignore[attr-defined]
    try:
        second = Session().get_service_data("ec2")
        regions = Session().get_available_regions("ec2")
    finally:
        loaders.json.loads = original  # type: ignore[attr-defined]
    assert decoded == [] and second is first
    assert "us-east-1" in regions


def test_a_launch_repeated_with_its_client_token_launches_nothing_new(fresh_lab: labkit.Lab) -> None:
    """EC2 API reference, "Ensure idempotency in Amazon EC2 API requests": a RunInstances repeated with
    the same client token succeeds without launching new instances, with the first request's result.
    Before: moto launched a second instance (notebook 05's launch cell, run twice)."""
    ec2 = fresh_lab.client("ec2")
    create_role(fresh_lab.client("iam"))
    image = ec2.describe_images(Owners=["amazon"], Filters=AL2023)["Images"][0]["ImageId"]
    launched = [ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="once",
                                  IamInstanceProfile={"Name": ROLE})["Instances"][0]
                for _ in range(2)]  # fmt: skip
    assert launched[0]["InstanceId"] == launched[1]["InstanceId"]  # and its profile was not attached twice
    [association] = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
    assert association["InstanceId"] == launched[0]["InstanceId"]
    other = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, ClientToken="another")["Instances"][0]
    assert other["InstanceId"] != launched[0]["InstanceId"]
    assert len(fresh_lab.instances()) == 2
