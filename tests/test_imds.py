"""The metadata service: its rules in-process, then every rule over real HTTP from an instance."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

import labkit
from conftest import EC2_TRUST, IMDS_TOKEN, NO_CREDENTIALS, ROLE, Demo, create_role, launch
from labkit.catalogue import AL2023
from labkit.labprocess.facts import InstanceFacts
from labkit.labprocess.imds import MetadataService, Tokens, error_reply

BASE = "http://169.254.169.254/latest"
FACTS = InstanceFacts(
    instance_id="i-0123456789abcdef0",
    state="running",
    ami_id="ami-03c3da4cfa8e8943a",
    instance_type="t3.micro",
    local_ipv4="172.31.0.4",
    availability_zone="us-east-1a",
    security_groups=("default",),
    http_tokens="optional",
    http_endpoint="enabled",
    profile_arn=None,
    profile_id=None,
    role_name=None,
    role_arn=None,
    role_trust_policy=None,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def service(clock: Clock | None = None) -> MetadataService:
    return MetadataService(lambda _: None, Tokens("secret", clock=clock or Clock()))


# -- the rules, in-process ------------------------------------------------------------------


def test_a_token_is_valid_for_its_ttl_and_then_expires() -> None:
    clock = Clock()
    tokens = Tokens("secret", clock=clock)
    token = tokens.mint(FACTS.instance_id, 60)
    assert tokens.remaining(FACTS.instance_id, token) == 60
    clock.now += 59
    assert tokens.remaining(FACTS.instance_id, token) == 1
    clock.now += 1
    assert tokens.remaining(FACTS.instance_id, token) is None


def test_a_token_belongs_to_one_instance_and_one_lab() -> None:
    token = Tokens("secret").mint(FACTS.instance_id, 60)
    assert Tokens("secret").remaining("i-0fffffffffffffff0", token) is None
    assert Tokens("another lab's secret").remaining(FACTS.instance_id, token) is None
    assert Tokens("secret").remaining(FACTS.instance_id, "not-base64!") is None


def test_the_listing_shows_iam_only_with_a_profile() -> None:
    """What else the listing holds: tests/test_metadata_categories.py."""
    assert "iam/" not in service().respond(FACTS, "GET", "/latest/meta-data/", {}).body.split("\n")
    with_profile = replace(FACTS, profile_arn="arn:aws:iam::123456789012:instance-profile/P", profile_id="AIPA1")
    assert "iam/" in service().respond(with_profile, "GET", "/latest/meta-data/", {}).body.split("\n")


def test_other_methods_are_405() -> None:
    assert service().respond(FACTS, "POST", "/latest/meta-data/", {}).status == 405
    assert service().respond(FACTS, "GET", "/latest/api/token", {}).status == 405


# -- over real HTTP, from the instance --------------------------------------------------------


def status(demo: Demo, curl_args: str, *, token: bool = True) -> int:
    """The HTTP status curl gets on the instance; with an IMDSv2 token unless `token` is False or the
    request is for one (PUT) or carries its own."""
    if token and "api/token" not in curl_args and "X-aws-ec2-metadata-token:" not in curl_args:
        curl_args = f'-H "$H" {curl_args}'
        result = demo.box.run(f"{IMDS_TOKEN}curl -s -o /dev/null -w '%{{http_code}}' {curl_args}")
    else:
        result = demo.box.run(f"curl -s -o /dev/null -w '%{{http_code}}' {curl_args}")
    return int(result.stdout)


def test_imdsv2_token_round_trip(demo: Demo) -> None:
    result = demo.box.run(
        f'TOKEN=$(curl -s -X PUT "{BASE}/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600") '
        f'&& curl -s -H "X-aws-ec2-metadata-token: $TOKEN" {BASE}/meta-data/instance-id'
    )
    assert result.exit_code == 0
    assert result.stdout == demo.instance_id


@pytest.mark.parametrize("ttl_header", ["", "-H 'X-aws-ec2-metadata-token-ttl-seconds: 0'",
                                        "-H 'X-aws-ec2-metadata-token-ttl-seconds: 21601'",
                                        "-H 'X-aws-ec2-metadata-token-ttl-seconds: soon'"])  # fmt: skip
def test_a_token_request_without_a_valid_ttl_is_400(demo: Demo, ttl_header: str) -> None:
    assert status(demo, f"-X PUT {BASE}/api/token {ttl_header}") == 400


def test_a_token_request_through_a_forwarding_proxy_is_403(demo: Demo) -> None:
    headers = "-H 'X-aws-ec2-metadata-token-ttl-seconds: 60' -H 'X-Forwarded-For: 203.0.113.7'"
    assert status(demo, f"-X PUT {BASE}/api/token {headers}") == 403


def test_an_invalid_or_expired_token_is_401(demo: Demo) -> None:
    assert status(demo, f"-H 'X-aws-ec2-metadata-token: AAAAbogus' {BASE}/meta-data/") == 401
    token = demo.box.run(f"curl -s -X PUT {BASE}/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 1'").stdout
    assert status(demo, f"-H 'X-aws-ec2-metadata-token: {token}' {BASE}/meta-data/") == 200
    time.sleep(2.05)
    assert status(demo, f"-H 'X-aws-ec2-metadata-token: {token}' {BASE}/meta-data/") == 401


def test_a_token_from_another_instance_is_401(demo: Demo) -> None:
    launch(demo.lab, "other-instance")
    other = demo.lab.instance("other-instance")
    token = other.run(f"curl -s -X PUT {BASE}/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'").stdout
    assert status(demo, f"-H 'X-aws-ec2-metadata-token: {token}' {BASE}/meta-data/") == 401


def test_required_tokens_refuse_imdsv1_with_401_but_the_cli_keeps_working(attached: Demo) -> None:
    attached.ec2.modify_instance_metadata_options(InstanceId=attached.instance_id, HttpTokens="required")
    result = attached.box.run(f"curl -s -w '\\n%{{http_code}}' {BASE}/meta-data/instance-id")
    assert result.stdout.endswith("<h1>401 - Unauthorized</h1>\n   </body>\n</html>\n\n401")
    assert attached.box.run("aws iam list-users").exit_code == 0


def test_a_disabled_endpoint_is_403_for_everything(demo: Demo) -> None:
    demo.ec2.modify_instance_metadata_options(InstanceId=demo.instance_id, HttpEndpoint="disabled")
    assert status(demo, f"{BASE}/meta-data/instance-id") == 403
    assert status(demo, f"-X PUT {BASE}/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'") == 403


def test_the_instance_paths_tell_the_truth_about_the_instance(demo: Demo) -> None:
    paths = ["instance-id", "ami-id", "instance-type", "local-ipv4", "placement/region", "placement/availability-zone"]
    result = demo.box.run(" ; ".join(f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/{p}; echo' for p in paths))
    described = demo.ec2.describe_instances(InstanceIds=[demo.instance_id])["Reservations"][0]["Instances"][0]
    assert result.stdout.split("\n")[:6] == [
        described["InstanceId"], described["ImageId"], described["InstanceType"],
        described["PrivateIpAddress"], "us-east-1", described["Placement"]["AvailabilityZone"],
    ]  # fmt: skip
    assert described["PrivateIpAddress"].startswith("172.31.")


def test_a_path_that_does_not_exist_is_the_aws_404_page(demo: Demo) -> None:
    result = demo.box.run(f"{IMDS_TOKEN}curl -s -H \"$H\" -w '%{{http_code}}' {BASE}/meta-data/no-such-thing")
    assert result.stdout.endswith("404")
    assert "<title>404 - Not Found</title>" in result.stdout and "labkit" not in result.stdout


def test_a_path_not_emulated_is_404_and_says_so(demo: Demo) -> None:
    path = "/latest/meta-data/identity-credentials/ec2/info"  # AWS: "[Internal use only]"
    result = demo.box.run(f"{IMDS_TOKEN}curl -s -H \"$H\" -w '%{{http_code}}' http://169.254.169.254{path}")
    assert result.stdout.endswith("404")
    assert f"labkit: the lab's metadata service does not emulate {path}" in result.stdout


def test_iam_paths_are_404_without_a_role(demo: Demo) -> None:
    assert status(demo, f"{BASE}/meta-data/iam/") == 404
    assert status(demo, f"{BASE}/meta-data/iam/security-credentials/{ROLE}") == 404


def test_the_iam_paths_with_a_role(attached: Demo) -> None:
    run = attached.box.run
    assert run(f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/iam/').stdout == "info\nsecurity-credentials/"
    assert run(f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/iam/security-credentials/').stdout == ROLE
    info = json.loads(run(f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/iam/info').stdout)
    profile = attached.iam.get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]
    assert info["Code"] == "Success"
    assert (info["InstanceProfileArn"], info["InstanceProfileId"]) == (profile["Arn"], profile["InstanceProfileId"])
    raw = run(f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/iam/security-credentials/{ROLE}').stdout
    document = json.loads(raw)
    assert list(document) == ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
    assert document["Code"] == "Success" and document["Type"] == "AWS-HMAC"
    assert document["AccessKeyId"].startswith("ASIA")
    assert '"Code" : "Success"' in raw
    assert status(attached, f"{BASE}/meta-data/iam/security-credentials/SomeOtherRole") == 404


def when(timestamp: str) -> datetime:
    """A time as the metadata service writes it (`2026-11-30T03:05:59Z`)."""
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_the_credentials_last_six_hours_from_when_they_were_issued(attached: Demo) -> None:
    """Role credentials from IMDS last six hours on AWS, as notebook 05 teaches: LastUpdated <= now <=
    Expiration, Expiration six hours after LastUpdated, and a second fetch (well before the refresh
    that comes in the last minutes) hands out the same session."""
    fetch = f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/iam/security-credentials/{ROLE}'
    asked = datetime.now(UTC).replace(microsecond=0)  # the document's times are whole seconds
    document = json.loads(attached.box.run(fetch).stdout)
    now = datetime.now(UTC)
    assert document["Code"] == "Success", document
    issued, expires = (when(document[k]) for k in ("LastUpdated", "Expiration"))
    assert asked <= issued <= now, document
    assert now <= expires, f"the credentials had expired when they were handed out: {document}"
    assert expires - issued == timedelta(hours=6), document
    assert timedelta(hours=6) - timedelta(minutes=2) <= expires - now <= timedelta(hours=6), (document, now)
    again = json.loads(attached.box.run(fetch).stdout)
    assert (again["AccessKeyId"], again["Expiration"]) == (document["AccessKeyId"], document["Expiration"])


def test_the_credentials_are_the_role_session_the_cli_uses(attached: Demo) -> None:
    document = json.loads(
        attached.box.run(f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/iam/security-credentials/{ROLE}').stdout
    )
    used = attached.box.run(
        f"AWS_ACCESS_KEY_ID={document['AccessKeyId']} AWS_SECRET_ACCESS_KEY={document['SecretAccessKey']} "
        f"AWS_SESSION_TOKEN={document['Token']} aws sts get-caller-identity --query Arn --output text"
    )
    assert used.stdout.strip() == f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{attached.instance_id}"


def test_a_role_ec2_may_not_assume_gives_assume_role_unauthorized_access(fresh_lab) -> None:  # type: ignore[no-untyped-def]
    lambda_only = {
        **EC2_TRUST,
        "Statement": [{**EC2_TRUST["Statement"][0], "Principal": {"Service": "lambda.amazonaws.com"}}],
    }
    iam, ec2 = fresh_lab.client("iam"), fresh_lab.client("ec2")
    create_role(iam, "LambdaRole", trust=lambda_only)
    instance_id = launch(fresh_lab, "wrong-role")
    ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": "LambdaRole"}, InstanceId=instance_id)
    box = fresh_lab.instance(instance_id)
    document = json.loads(
        box.run(f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/iam/security-credentials/LambdaRole').stdout
    )
    assert document["Code"] == "AssumeRoleUnauthorizedAccess"
    assert document["Message"].startswith("EC2 cannot assume the role LambdaRole.")
    assert not {"AccessKeyId", "SecretAccessKey", "Token"} & document.keys()
    cli = box.run("aws iam list-users")
    assert (cli.exit_code, cli.stderr.strip()) == (255, NO_CREDENTIALS)


def test_disassociating_makes_the_role_paths_404_at_once(attached: Demo) -> None:
    association = attached.ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"][0]
    attached.ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
    assert status(attached, f"{BASE}/meta-data/iam/security-credentials/{ROLE}") == 404
    assert attached.box.run("aws iam list-users").stderr.strip() == NO_CREDENTIALS


def test_replacing_the_association_switches_the_role(attached: Demo) -> None:
    create_role(attached.iam, "OtherRole")
    association = attached.ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"][0]
    attached.ec2.replace_iam_instance_profile_association(
        IamInstanceProfile={"Name": "OtherRole"}, AssociationId=association["AssociationId"]
    )
    assert (
        attached.box.run(f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/iam/security-credentials/').stdout
        == "OtherRole"
    )
    arn = attached.box.run("aws sts get-caller-identity --query Arn --output text").stdout.strip()
    assert arn == f"arn:aws:sts::123456789012:assumed-role/OtherRole/{attached.instance_id}"


def credentials(box: labkit.Instance, role: str) -> dict[str, str]:
    """The credentials document the instance's metadata service hands out for `role`, via curl."""
    return dict(
        json.loads(box.run(f'{IMDS_TOKEN}curl -s -H "$H" {BASE}/meta-data/iam/security-credentials/{role}').stdout)
    )


def caller(box: labkit.Instance) -> str:
    """Who the instance's own `aws` CLI is, with the credentials it finds (the metadata service's)."""
    return box.run("aws sts get-caller-identity --query Arn --output text").stdout.strip()


def test_two_instances_with_one_role_each_get_their_own_session(attached: Demo) -> None:
    """Guards against the role-session cache keyed by role instead of by instance (issue 16): the
    second instance then receives the first one's session, `assumed-role/DemoRoleForEC2/i-<the first>`."""
    second_id = launch(attached.lab, "second-instance")
    attached.ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": ROLE}, InstanceId=second_id)
    second = attached.lab.instance(second_id)
    first_keys, second_keys = credentials(attached.box, ROLE), credentials(second, ROLE)
    assert first_keys["AccessKeyId"] != second_keys["AccessKeyId"]
    assert caller(attached.box) == f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{attached.instance_id}"
    assert caller(second) == f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{second_id}"


def test_replacing_the_association_after_a_session_was_handed_out_serves_the_new_role(attached: Demo) -> None:
    """Guards against a stale role after the association was replaced (issue 16): the cached session
    kept without checking that it is for the instance's current role. The credentials are fetched
    before the switch, so a session is cached when the role changes."""
    before = credentials(attached.box, ROLE)
    assert caller(attached.box) == f"arn:aws:sts::123456789012:assumed-role/{ROLE}/{attached.instance_id}"
    create_role(attached.iam, "OtherRole")
    association = attached.ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"][0]
    attached.ec2.replace_iam_instance_profile_association(
        IamInstanceProfile={"Name": "OtherRole"}, AssociationId=association["AssociationId"]
    )
    after = credentials(attached.box, "OtherRole")
    assert after["Code"] == "Success" and after["AccessKeyId"] != before["AccessKeyId"]
    assert caller(attached.box) == f"arn:aws:sts::123456789012:assumed-role/OtherRole/{attached.instance_id}"


def test_error_pages_are_the_ones_aws_sends() -> None:
    assert error_reply(401).body.splitlines()[0] == '<?xml version="1.0" encoding="UTF-8"?>'
    assert error_reply(404).body.splitlines()[0] == '<?xml version="1.0" encoding="iso-8859-1"?>'


# -- Amazon Linux 2023 requires IMDSv2 (motofixes: al2023_requires_imdsv2) ------------------------------
def test_a_fresh_al2023_instance_refuses_imdsv1_as_aws_does(demo: Demo) -> None:
    """AL2023 User Guide, "IMDSv2": "By default, any instances launched with the AL2023 AMI require
    IMDSv2-only"; EC2 API Reference, Image: "ImdsSupport: If v2.0, ... Instances launched from this AMI
    will have HttpTokens automatically set to required ... In addition, HttpPutResponseHopLimit is set
    to 2". Before: the AMI had no ImdsSupport, the instance HttpTokens optional and hop limit 1, and a
    plain curl got 200."""
    described = demo.ec2.describe_instances(InstanceIds=[demo.instance_id])["Reservations"][0]["Instances"][0]
    image = demo.ec2.describe_images(ImageIds=[described["ImageId"]])["Images"][0]
    assert image["Name"].startswith("al2023-ami-") and image["ImdsSupport"] == "v2.0"
    attribute = demo.ec2.describe_image_attribute(ImageId=described["ImageId"], Attribute="imdsSupport")
    assert attribute["ImdsSupport"] == {"Value": "v2.0"}
    options = described["MetadataOptions"]
    assert (options["HttpTokens"], options["HttpPutResponseHopLimit"], options["HttpEndpoint"]) == (
        "required", 2, "enabled")  # fmt: skip
    plain = demo.box.run(f"curl -s -w '\\n%{{http_code}}' {BASE}/meta-data/instance-id")
    assert plain.stdout.endswith("<h1>401 - Unauthorized</h1>\n   </body>\n</html>\n\n401")
    assert status(demo, f"{BASE}/meta-data/instance-id") == 200  # with a token


def test_a_launch_that_allows_imdsv1_keeps_what_it_asked_for(fresh_lab: labkit.Lab) -> None:
    """EC2 User Guide, "Order of precedence for instance metadata options": what the launch itself
    sets comes first, the AMI's ImdsSupport last; an AMI without ImdsSupport launches with
    HttpTokens optional and a hop limit of 1."""
    ec2 = fresh_lab.client("ec2")
    al2023 = ec2.describe_images(Owners=["amazon"], Filters=AL2023)["Images"][0]["ImageId"]
    older = next(i for i in ec2.describe_images(Owners=["amazon"])["Images"] if "ImdsSupport" not in i)["ImageId"]
    launched = {
        "al2023, optional at launch": ec2.run_instances(ImageId=al2023, MinCount=1, MaxCount=1,
                                                        MetadataOptions={"HttpTokens": "optional"}),
        "an AMI without ImdsSupport": ec2.run_instances(ImageId=older, MinCount=1, MaxCount=1),
    }  # fmt: skip
    options = {name: r["Instances"][0]["MetadataOptions"] for name, r in launched.items()}
    assert {name: (o["HttpTokens"], o["HttpPutResponseHopLimit"]) for name, o in options.items()} == {
        "al2023, optional at launch": ("optional", 2),  # the hop limit the launch left to the AMI
        "an AMI without ImdsSupport": ("optional", 1),
    }
    box = fresh_lab.instance(launched["al2023, optional at launch"]["Instances"][0]["InstanceId"])
    assert box.run(f"curl -s {BASE}/meta-data/instance-id").stdout == box.id  # IMDSv1 answers
