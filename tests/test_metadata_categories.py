"""The metadata service holds what AWS documents for an instance, as the EC2 API describes it;
the instances have Amazon Linux's `ec2-metadata` and reach the service by its names.

Each test names the AWS text it checks against:
- [Categories]: EC2 User Guide, "Instance metadata categories" and "Dynamic data categories"
  (docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-categories.html);
- [Retrieve]: "Retrieve instance metadata" (…/instancedata-data-retrieval.html);
- [Identity]: "Instance identity documents" and "Retrieve the instance identity document"
  (…/instance-identity-documents.html, …/retrieve-iid.html);
- [User data]: "Work with instance user data" (…/instancedata-add-user-data.html);
- [ec2-metadata]: the `ec2-metadata` script of github.com/amazonlinux/amazon-ec2-utils;
- [AEMM]: AWS's own metadata mock, github.com/aws/amazon-ec2-metadata-mock, its default values;
- [AL2 capture]: "JSON-formatted instance metadata for sample Amazon Linux 2" (gist.github.com/ystoneman,
  2021): a t2.micro's whole tree, e.g. `"hibernation": {"configured": false}`, `"history": []`.
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

import labkit
from conftest import IMDS_TOKEN, ROLE, Demo, imds_get
from labkit.labprocess.facts import InstanceFacts, InterfaceFacts
from labkit.labprocess.imds import MetadataService, Tokens
from labkit.labprocess.metadata_identity import IdentitySigner, document

HOST = "http://169.254.169.254"
BASE = f"{HOST}/latest"
MARK = "@@next@@"
AL2023 = "ami-03c3da4cfa8e8943a"

# [Retrieve] "Get the available versions of the instance metadata", the IMDSv1 example's output.
DOCUMENTED_VERSIONS = """1.0
2007-01-19
2007-03-01
2007-08-29
2007-10-10
2007-12-15
2008-02-01
2008-09-01
2009-04-04
2011-01-01
2011-05-01
2012-01-12
2014-02-25
2014-11-05
2015-10-20
2016-04-19
2016-06-30
2016-09-02
2018-03-28
2018-08-17
2018-09-24
2019-10-01
2020-10-27
2021-01-03
2021-03-23
latest"""

ENI = InterfaceFacts(
    mac="02:00:00:aa:bb:cc",
    interface_id="eni-0123456789abcdef0",
    device_number=0,
    owner_id="123456789012",
    private_ipv4s=("172.31.0.4",),
    public_ipv4="54.214.0.7",
    public_hostname="ec2-54-214-0-7.compute-1.amazonaws.com",
    ipv6s=(),
    security_groups=("default",),
    security_group_ids=("sg-0123456789abcdef0",),
    subnet_id="subnet-0123456789abcdef0",
    subnet_ipv4_cidr_block="172.31.0.0/20",
    subnet_ipv6_cidr_blocks=(),
    vpc_id="vpc-0123456789abcdef0",
    vpc_ipv4_cidr_blocks=("172.31.0.0/16",),
    vpc_ipv6_cidr_blocks=(),
)
FACTS = InstanceFacts(
    instance_id="i-0123456789abcdef0",
    state="running",
    ami_id=AL2023,
    instance_type="t3.micro",
    local_ipv4="172.31.0.4",
    availability_zone="us-east-1a",
    security_groups=("default",),
    http_tokens="optional",
    http_endpoint="enabled",
    profile_arn="arn:aws:iam::123456789012:instance-profile/P",
    profile_id="AIPA0000000000000000",
    role_name=None,
    role_arn=None,
    role_trust_policy=None,
    reservation_id="r-0123456789abcdef0",
    launch_time=datetime(2026, 11, 29, 12, 0, 5, tzinfo=UTC),
    availability_zone_id="use1-az6",
    root_device_name="/dev/xvda",
    interfaces=(ENI,),
)


def service() -> MetadataService:
    return MetadataService(lambda _: None, Tokens("secret"))


def get(path: str, facts: InstanceFacts = FACTS) -> tuple[int, str | bytes]:
    reply = service().respond(facts, "GET", path, {})
    return reply.status, reply.body


# -- over real HTTP, from an instance -------------------------------------------------------


def fetch(box: labkit.Instance, *paths: str) -> list[str]:
    """What `curl -s` prints for each path under 169.254.169.254, in one shell, with an IMDSv2 token
    (Amazon Linux 2023 requires one)."""
    script = IMDS_TOKEN + " ; ".join(f'curl -s -H "$H" {shlex.quote(HOST + path)}; echo; echo {MARK}' for path in paths)
    return box.run(script).stdout.split(f"\n{MARK}\n")[: len(paths)]


def status(box: labkit.Instance, url: str, *curl_args: str) -> int:
    """The status curl gets, with an IMDSv2 token unless the request is for one or carries its own."""
    extra = " ".join(curl_args)
    if "api/token" in url or "X-aws-ec2-metadata-token:" in extra:
        return int(box.run(f"curl -s -o /dev/null -w '%{{http_code}}' {extra} {shlex.quote(url)}").stdout)
    curl = f"curl -s -o /dev/null -w '%{{http_code}}' -H \"$H\" {extra} {shlex.quote(url)}"
    return int(box.run(IMDS_TOKEN + curl).stdout)


def described(demo: Demo, instance_id: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The instance and its reservation, as DescribeInstances gives them."""
    reservation = demo.ec2.describe_instances(InstanceIds=[instance_id or demo.instance_id])["Reservations"][0]
    return reservation["Instances"][0], reservation


def launch(demo: Demo, **extra: Any) -> labkit.Instance:
    """Another AL2023 t3.micro of the lab, launched with RunInstances' `extra` parameters."""
    instance = demo.ec2.run_instances(ImageId=AL2023, InstanceType="t3.micro", MinCount=1, MaxCount=1, **extra)
    return demo.lab.instance(instance["Instances"][0]["InstanceId"])


# -- builds ---------------------------------------------------------------------------------


def test_the_root_lists_the_builds_aws_lists(demo: Demo) -> None:
    """[Retrieve] `curl http://169.254.169.254/` lists the builds, 1.0 to 2021-03-23, then latest."""
    assert fetch(demo.box, "/") == [DOCUMENTED_VERSIONS]


def test_latest_lists_dynamic_and_meta_data_and_user_data_only_with_user_data(demo: Demo) -> None:
    """[Retrieve] /latest/ holds meta-data and dynamic; [User data] user data, when the instance has some."""
    assert fetch(demo.box, "/latest/") == ["dynamic\nmeta-data"]
    assert fetch(launch(demo, UserData="echo hi"), "/latest/") == ["dynamic\nmeta-data\nuser-data"]


# [Categories] "Version when category was released", for categories every lab instance has.
RELEASED = {
    "ami-id": "1.0", "hostname": "1.0", "instance-id": "1.0", "local-ipv4": "1.0", "reservation-id": "1.0",
    "security-groups": "1.0", "local-hostname": "2007-01-19", "public-hostname": "2007-01-19",
    "public-ipv4": "2007-01-19", "instance-type": "2007-08-29", "block-device-mapping/": "2007-12-15",
    "placement/": "2008-02-01", "instance-action": "2008-09-01", "mac": "2011-01-01", "network/": "2011-01-01",
    "metrics/": "2011-05-01", "iam/": "2012-01-12", "services/": "2014-02-25", "events/": "2018-08-17",
    "instance-life-cycle": "2019-10-01",
}  # fmt: skip


@pytest.mark.parametrize("version", DOCUMENTED_VERSIONS.split("\n"))
def test_each_build_serves_the_categories_released_by_then(version: str) -> None:
    """[Categories] each category is in the builds from the one that released it ("Version when
    category was released"); /dynamic from 2009-04-04 ("Dynamic data categories")."""
    status, listing = get(f"/{version}/meta-data/")
    assert status == 200 and isinstance(listing, str)
    expected = {name for name, since in RELEASED.items() if version == "latest" or since <= version}
    assert expected <= set(listing.split("\n"))
    assert not {name for name in RELEASED if name not in expected} & set(listing.split("\n"))
    assert get(f"/{version}/meta-data/instance-id") == (200, FACTS.instance_id)
    assert get(f"/{version}/meta-data/iam/")[0] == (200 if "iam/" in expected else 404)
    has_dynamic = version == "latest" or version >= "2009-04-04"
    assert get(f"/{version}/dynamic/instance-identity/document")[0] == (200 if has_dynamic else 404)


def test_a_build_aws_does_not_list_is_404() -> None:
    """[Retrieve] "a 404 - Not Found HTTP error code if the resource is not available"."""
    assert get("/2099-01-01/meta-data/instance-id")[0] == 404
    assert get("/latest/no-such-root")[0] == 404


def test_a_token_put_to_a_dated_path_is_403() -> None:
    """[Retrieve] "Issuing PUT requests to any version-specific path, for example
    /2021-03-23/api/token, will result in the metadata service returning 403 Forbidden errors." """
    reply = service().respond(FACTS, "PUT", "/2021-03-23/api/token", {"x-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert reply.status == 403 and "<h1>403 - Forbidden</h1>" in str(reply.body)


def test_repeated_slashes_are_read_as_one(demo: Demo) -> None:
    """[ec2-metadata] `-e` asks for `latest//meta-data/reservation-id` (its path argument begins
    with a slash), and prints the reservation: EC2 reads `//` as `/`."""
    _, reservation = described(demo)
    assert fetch(demo.box, "/latest//meta-data/reservation-id") == [reservation["ReservationId"]]


# -- meta-data, as DescribeInstances describes the instance ----------------------------------


def test_the_top_level_items_of_an_instance_without_key_role_or_tags(demo: Demo) -> None:
    """[Retrieve] "Get the top-level metadata items": the example's items, but iam/ (no role),
    public-keys/ (no key pair at launch); [Categories] plus instance-life-cycle (2019-10-01);
    [AL2 capture] plus hibernation/."""
    assert fetch(demo.box, "/latest/meta-data/")[0].split("\n") == [
        "ami-id", "ami-launch-index", "ami-manifest-path", "block-device-mapping/", "events/", "hibernation/",
        "hostname", "instance-action", "instance-id", "instance-life-cycle", "instance-type", "local-hostname",
        "local-ipv4", "mac", "metrics/", "network/", "placement/", "profile", "public-hostname", "public-ipv4",
        "reservation-id", "security-groups", "services/",
    ]  # fmt: skip
    demo.attach()
    assert "iam/" in fetch(demo.box, "/latest/meta-data/")[0].split("\n")


def test_the_instance_items_are_what_describe_instances_says(demo: Demo) -> None:
    """[Categories] ami-id, ami-launch-index, reservation-id, instance-type, local-ipv4, hostname
    and local-hostname ("The private IPv4 DNS hostname"), public-ipv4, public-hostname ("The
    instance's public DNS"), mac ("The instance's media access control (MAC) address"),
    security-groups ("The names of the security groups applied to the instance"), placement/…"""
    instance, reservation = described(demo)
    eni = instance["NetworkInterfaces"][0]
    zone = demo.ec2.describe_availability_zones(ZoneNames=[instance["Placement"]["AvailabilityZone"]])
    paths = ["ami-id", "ami-launch-index", "reservation-id", "instance-type", "local-ipv4", "hostname",
             "local-hostname", "public-ipv4", "public-hostname", "mac", "security-groups",
             "placement/availability-zone", "placement/availability-zone-id", "placement/region",
             "instance-life-cycle"]  # fmt: skip
    assert fetch(demo.box, *(f"/latest/meta-data/{p}" for p in paths)) == [
        instance["ImageId"], str(instance["AmiLaunchIndex"]), reservation["ReservationId"], instance["InstanceType"],
        instance["PrivateIpAddress"], instance["PrivateDnsName"], instance["PrivateDnsName"],
        instance["PublicIpAddress"], instance["PublicDnsName"], eni["MacAddress"],
        "\n".join(g["GroupName"] for g in eni["Groups"]), instance["Placement"]["AvailabilityZone"],
        zone["AvailabilityZones"][0]["ZoneId"], "us-east-1", instance.get("InstanceLifecycle", "on-demand"),
    ]  # fmt: skip
    assert eni["Groups"] and instance["PublicIpAddress"]


def test_the_network_interface_items_are_what_describe_instances_says(demo: Demo) -> None:
    """[Categories] network/interfaces/macs/mac/…: device-number ("corresponds to the DeviceIndex"),
    interface-id, ipv4-associations/public-ip, local-hostname, local-ipv4s, mac, network-card-index,
    owner-id, public-hostname, public-ipv4s, security-groups, security-group-ids, subnet-id,
    subnet-ipv4-cidr-block, vpc-id, vpc-ipv4-cidr-block, vpc-ipv4-cidr-blocks; [Retrieve] "Get the
    subnet ID for an instance"."""
    instance, _ = described(demo)
    eni = instance["NetworkInterfaces"][0]
    subnet = demo.ec2.describe_subnets(SubnetIds=[eni["SubnetId"]])["Subnets"][0]
    vpc = demo.ec2.describe_vpcs(VpcIds=[eni["VpcId"]])["Vpcs"][0]
    mac = f"/latest/meta-data/network/interfaces/macs/{eni['MacAddress']}"
    public = eni["Association"]["PublicIp"]
    expected = {
        "device-number": str(eni["Attachment"]["DeviceIndex"]),
        "interface-id": eni["NetworkInterfaceId"],
        f"ipv4-associations/{public}": eni["PrivateIpAddress"],
        "local-hostname": eni["PrivateDnsName"],
        "local-ipv4s": "\n".join(a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]),
        "mac": eni["MacAddress"],
        "network-card-index": str(eni["Attachment"]["NetworkCardIndex"]),
        "owner-id": eni["OwnerId"],
        "public-hostname": instance["PublicDnsName"],
        "public-ipv4s": public,
        "security-group-ids": "\n".join(g["GroupId"] for g in eni["Groups"]),
        "security-groups": "\n".join(g["GroupName"] for g in eni["Groups"]),
        "subnet-id": subnet["SubnetId"],
        "subnet-ipv4-cidr-block": subnet["CidrBlock"],
        "vpc-id": vpc["VpcId"],
        "vpc-ipv4-cidr-block": vpc["CidrBlock"],
        "vpc-ipv4-cidr-blocks": "\n".join(c["CidrBlock"] for c in vpc["CidrBlockAssociationSet"]),
    }
    listing, macs, *values = fetch(
        demo.box, f"{mac}/", "/latest/meta-data/network/interfaces/macs/", *(f"{mac}/{p}" for p in expected)
    )
    assert macs == f"{eni['MacAddress']}/"
    assert listing.split("\n") == sorted({p.split("/")[0] + ("/" if "/" in p else "") for p in expected})
    assert dict(zip(expected, values, strict=True)) == expected


def test_the_block_device_mapping_is_the_instances(demo: Demo) -> None:
    """[Categories] block-device-mapping/ami ("The virtual device that contains the root/boot file
    system"), /root, and /ebsN for "any Amazon EBS volumes … present at launch time"; [AEMM]
    block-device-mapping/ebs holds the device name without /dev/ ("sdb")."""
    instance, _ = described(demo)
    root = instance["RootDeviceName"]
    assert fetch(demo.box, "/latest/meta-data/block-device-mapping/", "/latest/meta-data/block-device-mapping/ami",
                 "/latest/meta-data/block-device-mapping/root") == ["ami\nroot", root, root]  # fmt: skip
    volumes = [{"DeviceName": root, "Ebs": {"VolumeSize": 8}}, {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}}]
    box = launch(demo, BlockDeviceMappings=volumes)
    assert fetch(box, "/latest/meta-data/block-device-mapping/", "/latest/meta-data/block-device-mapping/ebs1") == [
        "ami\nebs1\nroot",
        "sdf",
    ]


def test_the_items_every_instance_has(demo: Demo) -> None:
    """[Categories] ami-manifest-path: "If you used an Amazon EBS-backed AMI … the returned result
    is unknown" ([AEMM] "(unknown)"); instance-action "Valid values: none | shutdown |
    bundle-pending"; events/maintenance/history and /scheduled: the events as JSON ([AL2 capture]
    none: []); services/domain ("amazonaws.com") and services/partition ("For standard AWS Regions,
    the partition is aws"); metrics/vhostmd "No longer available"; [Retrieve] profile. Their
    values: a 2016 capture in Metasploit's aws_ec2_instance_metadata documentation (profile
    "default-hvm", vhostmd `<?xml version="1.0" encoding="UTF-8"?>`); [AL2 capture]
    hibernation/configured false."""
    paths = ["ami-manifest-path", "instance-action", "events/", "events/maintenance/",
             "events/maintenance/history", "events/maintenance/scheduled", "services/", "services/domain",
             "services/partition", "metrics/vhostmd", "profile", "hibernation/configured"]  # fmt: skip
    assert fetch(demo.box, *(f"/latest/meta-data/{p}" for p in paths)) == [
        "(unknown)", "none", "maintenance/", "history\nscheduled", "[]", "[]", "domain\npartition",
        "amazonaws.com", "aws", '<?xml version="1.0" encoding="UTF-8"?>', "default-hvm", "false",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "path",
    ["kernel-id", "ramdisk-id", "product-codes", "ancestor-ami-ids", "public-keys/", "public-keys/0/openssh-key",
     "spot/instance-action", "spot/termination-time", "autoscaling/target-lifecycle-state",
     "elastic-gpus/associations/", "elastic-inference/associations/", "events/recommendations/rebalance",
     "placement/group-name", "placement/host-id", "placement/partition-number", "ipv6", "tags/instance",
     "network/interfaces/macs/02:00:00:00:00:00/mac"],
)  # fmt: skip
def test_what_an_instance_lacks_is_the_plain_404(path: str) -> None:
    """[Categories] "if applicable", "Only available if supplied at instance launch time", "present
    only if the Spot Instance has been marked…", "If there is an Elastic GPU attached…", …: the
    lab's instance has none of them, and [Retrieve] "a 404 - Not Found HTTP error code if the
    resource is not available", AWS's page, with no word of the lab's."""
    status, body = get(f"/latest/meta-data/{path}")
    assert status == 404 and "<title>404 - Not Found</title>" in str(body) and "labkit" not in str(body)


def test_identity_credentials_say_the_lab_does_not_emulate_them() -> None:
    """[Categories] identity-credentials/ec2/… "[Internal use only]": credentials AWS makes for its
    own features; the lab has none, and its 404 says so (a known difference)."""
    status, body = get("/latest/meta-data/identity-credentials/ec2/info")
    assert status == 404
    assert "does not emulate /latest/meta-data/identity-credentials/ec2/info" in str(body)
    assert "identity-credentials/" not in str(get("/latest/meta-data/")[1]).split("\n")


def test_the_public_key_of_the_key_pair_given_at_launch(demo: Demo) -> None:
    """[Retrieve] "Get the list of available public keys" (`0=my-public-key`), "Show the formats in
    which public key 0 is available" (`openssh-key`), "Get public key 0 (in the OpenSSH key
    format)" (`ssh-rsa … my-public-key`)."""
    demo.ec2.create_key_pair(KeyName="my-public-key")
    key = demo.ec2.describe_key_pairs(KeyNames=["my-public-key"], IncludePublicKey=True)["KeyPairs"][0]["PublicKey"]
    box = launch(demo, KeyName="my-public-key")
    keys, formats, openssh = fetch(
        box,
        "/latest/meta-data/public-keys/",
        "/latest/meta-data/public-keys/0/",
        "/latest/meta-data/public-keys/0/openssh-key",
    )
    assert (keys, formats) == ("0=my-public-key", "openssh-key")
    assert openssh == " ".join(key.split()[:2]) + " my-public-key"


def test_instance_tags_only_when_instance_metadata_tags_is_enabled(demo: Demo) -> None:
    """[Retrieve] "Get the instance tags for an instance": with tags on instance metadata enabled
    and tags Name=MyInstance and Environment=Dev, tags/instance lists `Name` and `Environment`,
    tags/instance/Name is `MyInstance`; [Categories] tags/instance, "Only available if you turned on
    access to instance tags in instance metadata"."""
    tags = [{"Key": "Name", "Value": "MyInstance"}, {"Key": "Environment", "Value": "Dev"}]
    box = launch(demo, TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
    assert status(box, f"{BASE}/meta-data/tags/instance") == 404
    demo.ec2.modify_instance_metadata_options(InstanceId=box.id, InstanceMetadataTags="enabled")
    assert fetch(box, "/latest/meta-data/tags/instance", "/latest/meta-data/tags/instance/Name") == [
        "Name\nEnvironment",
        "MyInstance",
    ]
    assert "tags/" in fetch(box, "/latest/meta-data/")[0].split("\n")


# -- user data and dynamic data -------------------------------------------------------------


def test_user_data_is_what_run_instances_was_given(demo: Demo) -> None:
    """[User data] `curl http://169.254.169.254/latest/user-data` prints the user data given at
    launch; an instance launched without any answers 404."""
    script = "#!/bin/bash\nyum update -y\necho hello > /tmp/hello\n"
    box = launch(demo, UserData=script)
    assert box.run(imds_get(f"{BASE}/user-data")).stdout == script
    assert status(demo.box, f"{BASE}/user-data") == 404


def test_the_dynamic_data_categories() -> None:
    """[Categories] dynamic: fws/instance-monitoring ("Valid values: enabled | disabled"),
    instance-identity/document, /pkcs7, /signature; [Identity] and /rsa2048 ("Each signature is
    available at a different endpoint")."""
    assert get("/latest/dynamic/") == (200, "fws/\ninstance-identity/")
    assert get("/latest/dynamic/instance-identity/") == (200, "document\npkcs7\nrsa2048\nsignature")
    assert get("/latest/dynamic/fws/instance-monitoring") == (200, "disabled")
    assert get("/latest/dynamic/fws/instance-monitoring", replace(FACTS, monitoring="enabled")) == (200, "enabled")


def test_the_identity_document_is_the_instance_as_describe_instances_says(demo: Demo) -> None:
    """[Identity] the document's fields, in the order and layout of the example output
    (`"accountId" : "…"`, two spaces), and values: the account that launched it, the AMI's
    architecture, its zone, AMI, id, type, pendingTime ("The date and time that the instance was
    launched"), private IPv4 address, Region, version 2017-09-30; null where not applicable."""
    instance, reservation = described(demo)
    raw = fetch(demo.box, "/latest/dynamic/instance-identity/document")[0]
    fields = json.loads(raw)
    assert list(fields) == [
        "accountId", "architecture", "availabilityZone", "billingProducts", "devpayProductCodes",
        "marketplaceProductCodes", "imageId", "instanceId", "instanceType", "kernelId", "pendingTime",
        "privateIp", "ramdiskId", "region", "version",
    ]  # fmt: skip
    assert fields == {
        "accountId": reservation["OwnerId"],
        "architecture": instance["Architecture"],
        "availabilityZone": instance["Placement"]["AvailabilityZone"],
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": None,
        "imageId": instance["ImageId"],
        "instanceId": instance["InstanceId"],
        "instanceType": instance["InstanceType"],
        "kernelId": None,
        "pendingTime": instance["LaunchTime"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "privateIp": instance["PrivateIpAddress"],
        "ramdiskId": None,
        "region": "us-east-1",
        "version": "2017-09-30",
    }
    assert raw.split("\n")[:2] == ["{", f'  "accountId" : "{reservation["OwnerId"]}",']


def test_the_identity_signatures_are_the_labs_own() -> None:
    """[Identity] "Base64-encoded signature: a base64-encoded SHA256 hash of the instance identity
    document … encrypted using an RSA key pair"; "PKCS7 signature"; "RSA-2048 signature". Signed by
    the lab's key (a known difference: AWS's key signs on EC2), and verifiable with its certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import pkcs7

    signer = IdentitySigner()
    text = document(FACTS)
    certificate = x509.load_pem_x509_certificate(signer.certificate_pem().encode())
    signature = base64.b64decode(signer.answer(FACTS, "signature"))
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048
    public_key.verify(signature, text.encode(), padding.PKCS1v15(), hashes.SHA256())  # raises if it does not verify
    assert "labkit" in certificate.subject.rfc4514_string() and "not AWS" in certificate.subject.rfc4514_string()
    for kind in ("pkcs7", "rsa2048"):
        signed = base64.b64decode(signer.answer(FACTS, kind))
        assert pkcs7.load_der_pkcs7_certificates(signed) == [certificate]
        assert text.encode() in signed  # the document itself, as it is served
    service_ = MetadataService(lambda _: None, Tokens("secret"), identity=signer)
    assert service_.respond(FACTS, "GET", "/latest/dynamic/instance-identity/document", {}).body == text


# -- how instances reach it -------------------------------------------------------------------


def test_the_names_amazon_linux_resolves_to_the_service(demo: Demo) -> None:
    """On Amazon Linux `http://instance-data/` reaches the service (its resolver's search domain
    is ec2.internal, and the VPC's DNS resolves instance-data.ec2.internal to 169.254.169.254), as
    the widely quoted answer to "How to get the instance id from within an EC2 instance?" uses."""
    assert fetch(demo.box, "/latest/meta-data/instance-id") == [demo.instance_id]
    for name in ("instance-data", "instance-data.ec2.internal"):
        out = demo.box.run(imds_get(f"http://{name}/latest/meta-data/instance-id")).stdout
        assert out == demo.instance_id


def test_the_ipv6_address_answers_only_where_the_instance_may_use_it(either_demo: Demo) -> None:
    """[Retrieve] IPv6: `http://[fd00:ec2::254]/latest/meta-data/`; "The IPv6 address of the IMDS
    is compatible with IMDSv2 commands. The IPv6 address is only accessible on Instances built on
    the AWS Nitro System and in an IPv6-supported subnet (dual stack or IPv6 only)", and
    ModifyInstanceMetadataOptions' HttpProtocolIpv6: "Enables or disables the IPv6 endpoint"."""
    demo = either_demo  # sealed by the kernel, the address is on the instance's own loopback
    url = "http://[fd00:ec2::254]/latest/meta-data/instance-id"
    refused = demo.box.run(f"curl -s -w '\\n%{{http_code}}' '{url}'").stdout
    assert refused.endswith("\n403") and "HttpProtocolIpv6 is disabled" in refused
    instance, _ = described(demo)
    vpc_id, subnet_id = instance["VpcId"], instance["SubnetId"]
    block = demo.ec2.associate_vpc_cidr_block(VpcId=vpc_id, AmazonProvidedIpv6CidrBlock=True)
    prefix = block["Ipv6CidrBlockAssociation"]["Ipv6CidrBlock"].split("/")[0]
    demo.ec2.associate_subnet_cidr_block(SubnetId=subnet_id, Ipv6CidrBlock=f"{prefix}/64")
    refused = demo.box.run(f"curl -s '{url}'").stdout
    assert "HttpProtocolIpv6 is disabled" in refused and "subnet" not in refused
    demo.ec2.modify_instance_metadata_options(InstanceId=demo.instance_id, HttpProtocolIpv6="enabled")
    token = demo.box.run(
        "curl -s -X PUT 'http://[fd00:ec2::254]/latest/api/token' -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'"
    ).stdout
    answer = demo.box.run(f"curl -s -H 'X-aws-ec2-metadata-token: {token}' '{url}'").stdout
    assert answer == demo.instance_id


# -- the instance's own ec2-metadata ----------------------------------------------------------

# [ec2-metadata] each option: the name it prints and the path it reads (its print_normal_metric calls)
PLAIN = {
    "-a": ("ami-id", "meta-data/ami-id"), "-l": ("ami-launch-index", "meta-data/ami-launch-index"),
    "-m": ("ami-manifest-path", "meta-data/ami-manifest-path"),
    "-n": ("ancestor-ami-ids", "meta-data/ancestor-ami-ids"),
    "-D": ("aws-domain", "meta-data/services/domain"), "-i": ("instance-id", "meta-data/instance-id"),
    "-t": ("instance-type", "meta-data/instance-type"), "-h": ("local-hostname", "meta-data/local-hostname"),
    "-o": ("local-ipv4", "meta-data/local-ipv4"), "-k": ("kernel-id", "meta-data/kernel-id"),
    "-z": ("placement", "meta-data/placement/availability-zone"),
    "-Z": ("availability-zone-id", "meta-data/placement/availability-zone-id"),
    "-R": ("region", "meta-data/placement/region"), "-P": ("partition", "meta-data/services/partition"),
    "-c": ("product-codes", "meta-data/product-codes"), "-p": ("public-hostname", "meta-data/public-hostname"),
    "-v": ("public-ipv4", "meta-data/public-ipv4"), "-r": ("ramdisk-id", "meta-data/ramdisk-id"),
    "-e": ("reservation-id", "meta-data/reservation-id"), "-s": ("security-groups", "meta-data/security-groups"),
    "-d": ("user-data", "user-data"),
}  # fmt: skip


def test_ec2_metadata_prints_name_colon_value_for_each_option(demo: Demo) -> None:
    """[ec2-metadata] `ec2-metadata -i` prints `instance-id: i-…`; each option prints its name, `: `
    and the value at its path, or `not available` when the path answers 404 (amazon-ec2-utils
    PR #26's transcript: `public-ipv4: 50.112.150.25`)."""
    box = launch(demo, UserData="echo hello")
    values = fetch(box, *(f"/latest/{path}" for _, path in PLAIN.values()))
    statuses = [status(box, f"{BASE}/{path}") for _, path in PLAIN.values()]
    printed = box.run(" ; ".join(f"ec2-metadata {option}" for option in PLAIN))
    assert printed.exit_code == 0 and printed.stderr == ""
    expected = [
        f"{name}: {value if code == 200 else 'not available'}"
        for (name, _), value, code in zip(PLAIN.values(), values, statuses, strict=True)
    ]
    assert printed.stdout.rstrip("\n").split("\n") == "\n".join(expected).split("\n")
    assert printed.stdout.startswith(f"ami-id: {AL2023}\n") and f"instance-id: {box.id}\n" in printed.stdout
    assert "kernel-id: not available\n" in printed.stdout and "user-data: echo hello\n" in printed.stdout


def test_ec2_metadata_lists_devices_keys_and_tags(demo: Demo) -> None:
    """[ec2-metadata] -b prints `block-device-mapping: ` then a tab, a space and `name: value` for
    each device; -u `public-keys: `, `keyname:…`, `index:0`, `format:openssh-key`,
    `key:(begins from next line)` and the key; -g `tags: ` and each tag as -b prints a device;
    `not available` when there are none."""
    demo.ec2.create_key_pair(KeyName="lab-key")
    tags = [{"Key": "Name", "Value": "web"}]
    box = launch(demo, KeyName="lab-key", TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
    root = described(demo, box.id)[0]["RootDeviceName"]
    key = fetch(box, "/latest/meta-data/public-keys/0/openssh-key")[0]
    assert box.run("ec2-metadata -b -u -g").stdout == (
        f"block-device-mapping: \n\t ami: {root}\n\t root: {root}\n"
        f"public-keys: \nkeyname:lab-key\nindex:0\nformat:openssh-key\nkey:(begins from next line)\n{key}\n"
        "tags: \nnot available\n"
    )
    demo.ec2.modify_instance_metadata_options(InstanceId=box.id, InstanceMetadataTags="enabled")
    assert box.run("ec2-metadata -g").stdout == "tags: \n\t Name: web\n"
    assert demo.box.run("ec2-metadata -u").stdout == "public-keys: \nnot available\n"


def test_ec2_metadata_quiet_prints_values_only(demo: Demo) -> None:
    """[ec2-metadata] --quiet "Suppress tag keys from the output" (PR #26: `ec2-metadata
    --public-ipv4 --quiet` prints `50.112.150.25`); -b's devices lose their names too."""
    instance, _ = described(demo)
    root = instance["RootDeviceName"]
    out = demo.box.run("ec2-metadata --public-ipv4 --quiet -i -b").stdout
    assert out == f"{instance['PublicIpAddress']}\n{demo.instance_id}\n{root}\n{root}\n"


def test_ec2_metadata_without_options_prints_all_in_its_order(demo: Demo) -> None:
    """[ec2-metadata] "--all  Show all metadata information for this host (also default)", in
    print_all's order, with its own label `availablility-zone-id`."""
    everything = demo.box.run("ec2-metadata").stdout
    assert demo.box.run("ec2-metadata --all").stdout == everything
    names = [line.split(":")[0] for line in everything.split("\n") if line and not line.startswith("\t")]
    names = [name for name in names if name != "not available"]
    assert names == [
        "ami-id", "ami-launch-index", "ami-manifest-path", "ancestor-ami-ids", "availablility-zone-id",
        "aws-domain", "block-device-mapping", "instance-id", "instance-type", "local-hostname", "local-ipv4",
        "kernel-id", "placement", "region", "partition", "product-codes", "public-hostname", "public-ipv4",
        "public-keys", "ramdisk-id", "reservation-id", "security-groups", "user-data", "tags",
    ]  # fmt: skip


def test_ec2_metadata_uses_imdsv2(attached: Demo) -> None:
    """[ec2-metadata] it first asks for an IMDSv2 token (`PUT latest/api/token`, TTL 900), so it
    works where HttpTokens is required; where the endpoint is disabled it says `[ERROR] Could not
    get IMDSv2 token. Instance Metadata might have been disabled or this is not an EC2 instance.`
    and exits 1."""
    attached.ec2.modify_instance_metadata_options(InstanceId=attached.instance_id, HttpTokens="required")
    plain = attached.box.run(f"curl -s -o /dev/null -w '%{{http_code}}' {BASE}/meta-data/instance-id")
    assert plain.stdout == "401"  # a plain GET is refused
    assert attached.box.run("ec2-metadata -i").stdout == f"instance-id: {attached.instance_id}\n"
    assert attached.box.run("ec2-metadata --path iam/security-credentials/ --quiet").stdout == f"{ROLE}\n"
    attached.ec2.modify_instance_metadata_options(InstanceId=attached.instance_id, HttpEndpoint="disabled")
    refused = attached.box.run("ec2-metadata -i")
    assert (refused.exit_code, refused.stdout) == (1, "")
    assert refused.stderr == (
        "[ERROR] Could not get IMDSv2 token. Instance Metadata might have been disabled or this is not an "
        "EC2 instance.\n"
    )


def test_ec2_metadata_path_reads_any_path(demo: Demo) -> None:
    """[ec2-metadata] --path: a path without a build is read under latest/meta-data/ (or latest/
    for dynamic…), and printed with that path as its name (PR #46's transcript:
    `latest/meta-data/events/maintenance/scheduled: []`, `/: 1.0`…)."""
    out = demo.box.run(
        "ec2-metadata --path events/maintenance/scheduled --path dynamic/fws/instance-monitoring --path /"
    ).stdout
    assert out == (
        "latest/meta-data/events/maintenance/scheduled: []\n"
        "latest/dynamic/fws/instance-monitoring: disabled\n"
        f"/: {DOCUMENTED_VERSIONS}\n"
    )


def test_ec2_metadata_refuses_an_unknown_option_as_getopt_does(demo: Demo) -> None:
    """[ec2-metadata] options are read by getopt(1): `ec2-metadata: invalid option -- 'x'`, then
    `Terminating...`, status 1; `-h` is --local-hostname, help is --help."""
    refused = demo.box.run("ec2-metadata -x")
    assert (refused.exit_code, refused.stdout, refused.stderr) == (
        1,
        "",
        "ec2-metadata: invalid option -- 'x'\nTerminating...\n",
    )
    instance, _ = described(demo)
    assert demo.box.run("ec2-metadata -h").stdout == f"local-hostname: {instance['PrivateDnsName']}\n"
    help_text = demo.box.run("ec2-metadata --help").stdout
    for option in ("--all", *(f"{short}/--" for short in PLAIN), "-b/--block-device-mapping", "-u/--public-keys",
                   "-g/--tags", "--quiet", "--path"):  # fmt: skip
        assert option in help_text
