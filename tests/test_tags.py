"""EC2's tag restrictions (the record tags_follow_ec2s_restrictions, labkit/labprocess/motofixes/tags.py).

A tag EC2 refuses is refused in EC2's words, on every path that takes tags, before anything is
made or tagged; every tag EC2 takes is kept exactly as given. moto alone took them all, and a Name
tag holding ESC made every later DescribeInstances unreadable (and `labkit status` with it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

import labkit
from conftest import create_role
from labkit.solutions import launch

LABKIT = str(Path(sys.executable).parent / "labkit")
IMAGE = "ami-03c3da4cfa8e8943a"
RESERVED = "Tag keys starting with 'aws:' are reserved for internal use"

# (a tag, what EC2 answers CreateTags)
REFUSED_BY_CREATE_TAGS = [
    ({"Key": "Name", "Value": "a\x1bb"},
     "Value ( a\\u001bb ) for parameter value is invalid. Tag values cannot contain the character U+001B"),
    ({"Key": "Na\x00me", "Value": "web"},
     "Value ( Na\\u0000me ) for parameter key is invalid. Tag keys cannot contain the character U+0000"),
    ({"Key": "aws:Name", "Value": "web"}, f"Value ( aws:Name ) for parameter key is invalid. {RESERVED}"),
    ({"Key": "AWS:name", "Value": "web"}, f"Value ( AWS:name ) for parameter key is invalid. {RESERVED}"),
    ({"Key": "k" * 129, "Value": "web"}, "Tag key exceeds the maximum length of 128 characters"),
    ({"Key": "Name", "Value": "v" * 257}, "Tag value exceeds the maximum length of 256 characters"),
]  # fmt: skip

# every character EC2 takes in its own resources' tags: not only letters, digits, spaces and + - = . _ : / @
TAKEN = [
    {"Key": "k" * 128, "Value": "v" * 256},
    {"Key": "Name", "Value": "Bob's box; #1 (test), ünïcödé 日本 \t!"},
    {"Key": "team:aws:owner", "Value": ""},
]


def refusal(call: Any) -> tuple[int, str, str]:
    """(HTTP status, code, message) of a call that AWS refuses."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    answer = caught.value.response
    return answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"], answer["Error"]["Message"]


def tags_of(lab: labkit.Lab, resource: str) -> dict[str, str]:
    described = lab.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [resource]}])["Tags"]
    return {tag["Key"]: tag["Value"] for tag in described}


@pytest.fixture
def tagged(fresh_lab: labkit.Lab) -> tuple[labkit.Lab, str]:
    """A fresh lab with one instance, Name web-1."""
    return fresh_lab, launch(fresh_lab, "web-1")


def test_create_tags_refuses_what_ec2_refuses_in_ec2s_words(tagged: tuple[labkit.Lab, str]) -> None:
    lab, instance = tagged
    create_tags = lab.client("ec2").create_tags
    for tag, said in REFUSED_BY_CREATE_TAGS:
        refused = refusal(lambda tag=tag: create_tags(Resources=[instance], Tags=[tag]))  # type: ignore[misc]
        assert refused == (400, "InvalidParameterValue", said)
    both = [{"Key": "Owner", "Value": "bob"}, REFUSED_BY_CREATE_TAGS[0][0]]  # one bad tag: none is added
    assert refusal(lambda: create_tags(Resources=[instance], Tags=both))[1] == "InvalidParameterValue"
    assert tags_of(lab, instance) == {"Name": "web-1"}
    assert [(i.instance_id, i.name) for i in lab.instances()] == [(instance, "web-1")]  # DescribeInstances reads
    env = {**os.environ, "LABKIT_HOME": str(lab.home)}
    shown = subprocess.run([LABKIT, "status"], env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert any(line.split()[:2] == [instance, "web-1"] for line in shown.stdout.splitlines()), shown.stdout


def test_only_a_caller_ec2_authenticates_and_authorizes_has_its_tags_checked(tagged: tuple[labkit.Lab, str]) -> None:
    """The tags are checked after the signature and the caller's policies, as moto checks them."""
    lab, instance = tagged
    iam = lab.client("iam")
    iam.create_user(UserName="no-policy")
    key = iam.create_access_key(UserName="no-policy")["AccessKey"]
    bad = [REFUSED_BY_CREATE_TAGS[0][0]]
    unauthorized = lab.client("ec2", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert refusal(lambda: unauthorized.create_tags(Resources=[instance], Tags=bad))[:2] == (
        403,
        "UnauthorizedOperation",
    )
    forged = lab.client("ec2", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key="x" * 40)
    assert refusal(lambda: forged.create_tags(Resources=[instance], Tags=bad))[:2] == (401, "AuthFailure")


def test_a_launch_whose_tags_ec2_refuses_launches_nothing(tagged: tuple[labkit.Lab, str]) -> None:
    lab, instance = tagged
    ec2 = lab.client("ec2")

    def run(*specifications: dict[str, Any]) -> Any:
        return lambda: ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                         TagSpecifications=list(specifications))  # fmt: skip

    named = {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "a\x1bb"}]}
    assert refusal(run(named)) == (400, "InvalidParameterValue", REFUSED_BY_CREATE_TAGS[0][1])
    reserved = {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "ok"}, {"Key": "aws:x", "Value": "v"}]}
    assert refusal(run(reserved)) == (400, "InvalidParameterValue", RESERVED)  # the spec's own sentence
    volume = {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "v" * 257}]}
    assert refusal(run({"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "ok"}]}, volume)) == (
        400,
        "InvalidParameterValue",
        "Tag value exceeds the maximum length of 256 characters",
    )
    assert [i.instance_id for i in lab.instances()] == [instance]  # nothing launched
    assert ec2.describe_volumes(Filters=[{"Name": "tag:Name", "Values": ["ok"]}])["Volumes"] == []


def test_any_resources_tags_are_checked_and_what_ec2_takes_is_kept_as_given(fresh_lab: labkit.Lab) -> None:
    ec2 = fresh_lab.client("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    groups_before = ec2.describe_security_groups()["SecurityGroups"]
    bad_group = {"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": "a\x1bb"}]}

    def make_group() -> Any:
        return ec2.create_security_group(GroupName="web", Description="web servers", TagSpecifications=[bad_group])

    assert refusal(make_group)[1:] == ("InvalidParameterValue", REFUSED_BY_CREATE_TAGS[0][1])
    assert ec2.describe_security_groups()["SecurityGroups"] == groups_before  # no group made
    bad_template = {"ResourceType": "instance", "Tags": [{"Key": "aws:x", "Value": "v"}]}
    assert refusal(lambda: ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={
        "ImageId": IMAGE, "TagSpecifications": [bad_template]}))[2] == RESERVED  # fmt: skip
    assert refusal(lambda: ec2.create_tags(Resources=[vpc], Tags=[{"Key": "aws:x", "Value": "v"}]))[2] == (
        f"Value ( aws:x ) for parameter key is invalid. {RESERVED}"
    )
    ec2.create_tags(Resources=[vpc], Tags=TAKEN)  # a positive control: what EC2 takes is taken
    assert tags_of(fresh_lab, vpc) == {tag["Key"]: tag["Value"] for tag in TAKEN}
    group = ec2.create_security_group(GroupName="web", Description="web servers", TagSpecifications=[
        {"ResourceType": "security-group", "Tags": TAKEN}])["GroupId"]  # fmt: skip
    assert tags_of(fresh_lab, group) == {tag["Key"]: tag["Value"] for tag in TAKEN}
    ec2.delete_tags(Resources=[vpc], Tags=[{"Key": "team:aws:owner"}])  # DeleteTags names tags, unchecked
    assert "team:aws:owner" not in tags_of(fresh_lab, vpc)


def test_the_aws_cli_shows_ec2s_refusal_in_one_line(fresh_lab: labkit.Lab) -> None:
    """On an instance whose role may tag, the real `aws` CLI tags it with ESC, and shows EC2's one line."""
    create_role(fresh_lab.client("iam"), "Tagger", policy="arn:aws:iam::aws:policy/AmazonEC2FullAccess")
    instance = launch(fresh_lab, "tagger", profile="Tagger")
    box = fresh_lab.instance("tagger")
    # the CLI's shorthand (Key=Name,Value=…) refuses ESC itself; its JSON form carries it, as \u001b
    esc = '[{"Key": "Name", "Value": "a\\u001bb"}]'
    refused = box.run(f"aws ec2 create-tags --resources {instance} --tags '{esc}'")
    assert refused.exit_code != 0 and refused.stdout == ""
    assert refused.stderr.strip() == (
        "An error occurred (InvalidParameterValue) when calling the CreateTags operation: "
        "Value ( a\\u001bb ) for parameter value is invalid. Tag values cannot contain the character U+001B"
    )
    described = box.run(f"aws ec2 describe-instances --instance-ids {instance} --query "
                        "'Reservations[].Instances[].Tags[].Value' --output text")  # fmt: skip
    assert (described.exit_code, described.stdout.strip(), described.stderr) == (0, "tagger", "")
