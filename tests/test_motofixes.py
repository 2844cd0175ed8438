"""The registry of the lab's changes to moto, botocore and awscli (labkit/labprocess/motofixes).

Each record has two paired tests. One runs the dependency alone, in a process of its own that never
imports the lab's code, and asserts that it still does what the record changes: when an upstream
release fixes it, that test fails and says which record to retire. The other, named in the record,
shows the lab doing what AWS does. This file also checks the registry itself, and that a record whose
target moved is reported and skipped, or, when the lesson needs it, stops the lab in one line.

Run as a script (`python tests/test_motofixes.py`), it prints what the dependencies alone do, as JSON.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import labkit
from labkit.statedir import read_info

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
IMAGE = "ami-03c3da4cfa8e8943a"


# -- what the dependencies do alone: each function is the probe of the record of its name ------------
def _ec2() -> Any:
    from moto.backends import get_backend

    return get_backend("ec2")[ACCOUNT]["us-east-1"]


def _iam() -> Any:
    from moto.backends import get_backend

    return get_backend("iam")[ACCOUNT]["aws"]


def _launch() -> Any:
    return _ec2().run_instances(IMAGE, 1, None, [], instance_type="t3.micro", is_instance_type_default=False,
                                tags={}, nics=[]).instances[0]  # fmt: skip


def al2023_requires_imdsv2() -> Any:
    image = next(a for a in _ec2().amis.values() if (a.name or "").startswith("al2023-ami-"))
    options = _ec2().run_instances(image.id, 1, None, [], instance_type="t3.micro", is_instance_type_default=False,
                                   tags={}, nics=[], metadata_options={}).instances[0].metadata_options  # fmt: skip
    return [getattr(image, "imds_support", None), options.http_tokens, options.http_put_response_hop_limit]


def client_token_makes_launch_idempotent() -> Any:
    ec2 = _ec2()
    launched = {ec2.run_instances(IMAGE, 1, None, [], instance_type="t3.micro", is_instance_type_default=False,
                                  tags={}, nics=[], client_token="once").instances[0].id for _ in range(2)}  # fmt: skip
    return len(launched)


def _error(call: Callable[[], Any]) -> list[str] | None:
    try:
        call()
    except Exception as error:
        return [type(error).__name__, getattr(error, "message", str(error))]
    return None


def botocore_data_read_once() -> Any:
    from botocore.session import Session

    return Session().get_service_data("ec2") is Session().get_service_data("ec2")


def instance_type_offerings_of_the_labs_region() -> Any:
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS

    return len([region for region, offered in INSTANCE_TYPE_OFFERINGS["region"].items() if offered]) > 1


def default_subnet_address() -> Any:
    return _launch().private_ip.split(".")[0]


def metadata_options_keep_what_is_not_named() -> Any:
    instance = _launch()
    _ec2().modify_instance_metadata_options(instance.id, http_tokens="required")
    return instance.metadata_options.http_endpoint


def inactive_keys_are_refused() -> Any:
    from moto.iam.access_control import IAMUserAccessKey

    iam = _iam()
    iam.create_user("us-east-1", "leaky")
    key = iam.create_access_key("leaky")
    iam.update_access_key("leaky", key.access_key_id, "Inactive")
    return _error(lambda: IAMUserAccessKey(ACCOUNT, "aws", key.access_key_id, {}))


def ids_look_like_aws() -> Any:
    iam = _iam()
    user, profile = iam.create_user("us-east-1", "ids"), iam.create_instance_profile("ids", "/", [])
    return {"user ids are AIDA…": user.id.startswith("AIDA"), "profile ids are AIPA…": profile.id.startswith("AIPA")}


def access_keys_are_never_seeded() -> Any:
    from moto.iam.models import AccessKey
    from moto.moto_api._internal import mock_random
    from moto.sts.models import random_session_token

    drawn = []
    for _ in range(2):
        mock_random.seed(7)
        drawn.append((AccessKey(None, "AKIA", ACCOUNT).access_key_id, random_session_token()))
    return {"key ids follow the seed": drawn[0][0] == drawn[1][0], "tokens follow it": drawn[0][1] == drawn[1][1]}


def not_found_says_what_aws_says() -> Any:
    iam = _iam()
    return [_error(lambda: iam.get_role("NoSuchRole")), _error(lambda: iam.get_instance_profile("NoSuchProfile"))]


def trust_policy_must_be_json() -> Any:
    return _iam().create_role("Broken", "{'Version': 2012}", "/", None, "", [], None).name


def _trust(**changes: Any) -> str:
    """A trust policy that lets EC2 assume the role, its statement changed (None removes a field)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    statement: dict[str, Any] = policy["Statement"][0]  # type: ignore[index]
    statement.update(changes)
    return json.dumps({**policy, "Statement": [{k: v for k, v in statement.items() if v is not None}]})


def trust_policies_validated_as_iam_validates_them() -> Any:
    iam = _iam()
    made = [iam.create_role(name, _trust(**changes), "/", None, "", [], None).name for name, changes in (
        ("WithResource", {"Resource": "*"}), ("NoPrincipal", {"Principal": None}),
        ("ServiceEc2", {"Principal": {"Service": "ec2"}}))]  # fmt: skip
    updated = [
        _error(lambda: iam.update_assume_role_policy("NoPrincipal", _trust(Principal=None))),
        _error(lambda: iam.update_assume_role_policy("NoPrincipal", _trust(Principal={"Service": "ec2"}))),
    ]
    return [*made, *updated]


def metadata_options_in_ec2s_ranges() -> Any:
    instance = _launch()
    _ec2().modify_instance_metadata_options(instance.id, http_tokens="sometimes", hop_limit=65, http_endpoint="on")
    options = instance.metadata_options
    return [options.http_tokens, options.http_put_response_hop_limit, options.http_endpoint]


def removing_a_role_not_held_is_no_such_entity() -> Any:
    iam = _iam()
    iam.create_instance_profile("HoldsNothing", "/", [])
    iam.create_role("NotHeld", _trust(), "/", None, "", [], None)
    return _error(lambda: iam.remove_role_from_instance_profile("HoldsNothing", "NotHeld"))


def described_profile_is_the_profile() -> Any:
    for name in ("DescribedFirst", "DescribedThen"):
        _iam().create_instance_profile(name, "/", [])
    instance = _launch()
    association = _ec2().associate_iam_instance_profile(instance.id, iam_instance_profile_name="DescribedFirst")
    shown = dict(instance.iam_instance_profile)
    _ec2().replace_iam_instance_profile_association(association.association_id,
                                                    iam_instance_profile_name="DescribedThen")  # fmt: skip
    return {"Id is the association's": shown["Id"] == association.association_id,
            "Arn follows a replace": instance.iam_instance_profile["Arn"].endswith("/DescribedThen")}  # fmt: skip


def instance_filters_as_ec2_knows_them() -> Any:
    _launch()  # moto reads the filters of each instance it has

    def refused(name: str) -> Any:
        return (_error(lambda: _ec2().describe_instances(filters={name: ["x"]})) or ["nothing raised"])[0]

    return [refused("iam-instance-profile.arn"), refused("no-such-filter")]


def ec2_names_a_missing_profile() -> Any:
    from moto.ec2.utils import filter_iam_instance_profiles

    return _error(lambda: filter_iam_instance_profiles(ACCOUNT, "aws", None, "NoSuchProfile"))


def managed_policies_once() -> Any:
    from moto.backends import get_backend

    return len(get_backend("iam")[ACCOUNT]["aws-cn"].managed_policies) > 1000


def region_lists_not_kept_per_backend() -> Any:
    from moto.core.base_backend import AccountSpecificBackend

    return hasattr(AccountSpecificBackend._generate_regions, "cache_info")  # a functools cache on the method


def subnet_addresses_kept_on_the_subnet() -> Any:
    from moto.ec2.models.subnets import Subnet

    return hasattr(Subnet._base_avail_ip_iterator, "cache_info")


def _short_refusals() -> Any:
    import boto3
    from moto.server import ThreadedMotoServer

    iam = _iam()
    iam.create_user("us-east-1", "nobody")
    key = iam.create_access_key("nobody")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()

        def refusal(service: str, call: str, **kwargs: Any) -> list[str]:
            keys = {"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key}
            client = boto3.client(service, region_name="us-east-1", endpoint_url=f"http://{host}:{port}", **keys)
            try:
                getattr(client, call)(**kwargs)
            except Exception as error:
                return [error.response["Error"]["Code"], error.response["Error"]["Message"]]  # type: ignore[attr-defined]
            return []

        return [refusal("iam", "create_user", UserName="intruder"), refusal("ec2", "describe_instances")]
    finally:
        server.stop()


def role_changes_reach_sessions_after_the_delay() -> Any:
    from moto.backends import get_backend
    from moto.iam.access_control import AssumedRoleAccessKey

    iam = _iam()
    allow = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:List*", "Resource": "*"}]}'
    policy = iam.create_policy("", "/", allow, "Listing", []).arn
    role = iam.create_role("Propagating", "{}", "/", None, "", [], None)
    iam.attach_role_policy(policy, "Propagating")
    session = get_backend("sts")[ACCOUNT]["aws"].assume_role(region_name="us-east-1", role_session_name="i-0456",
                                                             role_arn=role.arn, policy=None, duration=900,
                                                             external_id=None)  # fmt: skip
    key = AssumedRoleAccessKey(ACCOUNT, "aws", session.access_key_id, {"X-Amz-Security-Token": session.session_token})
    seen = [len(key.collect_policies())]
    iam.detach_role_policy(policy, "Propagating")
    return [*seen, len(key.collect_policies())]


def new_profiles_reach_ec2_after_the_delay() -> Any:
    _iam().create_instance_profile("JustMade", "/", [])
    instance = _launch()
    association = _ec2().associate_iam_instance_profile(instance.id, iam_instance_profile_name="JustMade")
    return association.iam_instance_profile.name


# -- probes over HTTP, for the records that change what moto's server answers a role's session --------
EC2_TRUST = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'  # noqa: E501
_served: list[Any] = []


def _endpoint() -> str:
    """One moto server (authorization on) for the probes that read its answers over HTTP."""
    if not _served:
        import atexit

        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        atexit.register(server.stop)
        _served.append(server)
    host, port = _served[0].get_host_and_port()
    return f"http://{host}:{port}"


def _role_session(role: str, policy: str = "arn:aws:iam::aws:policy/IAMReadOnlyAccess") -> dict[str, str]:
    """The keys of a session of a new role that trusts EC2 and has `policy`, named i-0123 as the lab names one."""
    from moto.backends import get_backend

    made = _iam().create_role(role, EC2_TRUST, "/", None, "", [], None)
    _iam().attach_role_policy(policy, role)
    session = get_backend("sts")[ACCOUNT]["aws"].assume_role(region_name="us-east-1", role_session_name="i-0123",
                                                             role_arn=made.arn, policy=None, duration=900,
                                                             external_id=None)  # fmt: skip
    return {"aws_access_key_id": session.access_key_id, "aws_secret_access_key": session.secret_access_key,
            "aws_session_token": session.session_token}  # fmt: skip


def _client(service: str, keys: dict[str, str]) -> Any:
    import boto3
    from botocore.config import Config

    once = Config(retries={"total_max_attempts": 1})  # moto's 500s are not worth retrying
    return boto3.client(service, region_name="us-east-1", endpoint_url=_endpoint(), config=once, **keys)


def _answer(client: Any, call: str, **kwargs: Any) -> list[Any]:
    """[HTTP status, error code, message] of a call; [status] when it succeeds; [status, exception
    name] when botocore cannot read the answer."""
    statuses: list[int] = []
    client.meta.events.register(
        "before-parse", lambda response_dict, **_: statuses.append(response_dict["status_code"])
    )
    try:
        getattr(client, call)(**kwargs)
    except Exception as error:
        response = getattr(error, "response", None)
        if response is None:
            return [statuses[-1] if statuses else None, type(error).__name__]
        return [statuses[-1], response["Error"]["Code"], response["Error"]["Message"]]
    return [statuses[-1]]


def a_role_session_names_no_user() -> Any:
    iam = _client("iam", _role_session("NamesNoUser"))
    return [iam.get_user()["User"]["UserName"], _answer(iam, "list_access_keys")[:2],
            _answer(iam, "list_mfa_devices")]  # fmt: skip


def started_instances_get_new_credentials() -> Any:
    ec2, instance = _ec2(), _launch()
    ec2.stop_instances([instance.id])
    ec2.start_instances([instance.id])
    return getattr(ec2.get_instance(instance.id), "lab_starts", None)


def requests_decided_by_the_labs_evaluator() -> Any:
    bounded = _client("iam", _role_session("Bounded"))
    _iam().put_role_permissions_boundary("Bounded", "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess")
    return [_short_refusals(), _answer(bounded, "list_users")[:1], _trust_naming_a_service()]


def sts_decodes_the_labs_messages() -> Any:
    sts = _client("sts", _role_session("Decoding", "arn:aws:iam::aws:policy/AdministratorAccess"))
    return _answer(sts, "decode_authorization_message", EncodedMessage="anything")


def simulations_answered_by_the_evaluator() -> Any:
    iam = _client("iam", _role_session("SimulatingCustom"))
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    return _answer(iam, "simulate_custom_policy", PolicyInputList=[policy], ActionNames=["iam:ListUsers"])


def sts_refusals_say_why() -> Any:
    allowed = _client("sts", _role_session("AllowedSts", "arn:aws:iam::aws:policy/AdministratorAccess"))
    return _answer(allowed, "get_session_token")[:1]  # a session's session token


def _unsigned(key: str) -> list[Any]:
    """[status, body] of a GET that is not signed, as curl sends one to https://probe-bucket.s3.amazonaws.com/KEY."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{_endpoint()}/{key}", headers={"Host": "probe-bucket.s3.amazonaws.com"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return [answer.status, answer.read().decode(errors="replace")[:80]]
    except urllib.error.HTTPError as error:
        return [error.code, error.read().decode(errors="replace")[:80]]


def buckets_decided_by_the_labs_evaluator() -> Any:
    admin = _client("s3", _role_session("BucketAdmin", "arn:aws:iam::aws:policy/AdministratorAccess"))
    admin.create_bucket(Bucket="probe-bucket")
    for key in ("private.txt", "public/notice.txt"):
        admin.put_object(Bucket="probe-bucket", Key=key, Body=b"probe")
    private = _unsigned("private.txt")
    objects, another = "arn:aws:s3:::probe-bucket", f"arn:aws:iam::{ACCOUNT}:role/Another"
    statements = [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"{objects}/public/*"},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"{objects}/private.txt",
         "Condition": {"ArnEquals": {"aws:PrincipalArn": another}}},
    ]  # fmt: skip
    bucket_policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
    admin.put_bucket_policy(Bucket="probe-bucket", Policy=bucket_policy)
    denied = _answer(admin, "get_object", Bucket="probe-bucket", Key="private.txt")
    return [private, _unsigned("public/notice.txt")[:1], denied]


def new_buckets_block_public_access() -> Any:
    admin = _client("s3", _role_session("BlockAdmin", "arn:aws:iam::aws:policy/AdministratorAccess"))
    admin.create_bucket(Bucket="probe-blocked")
    public = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::probe-blocked/*"}
    put = _answer(admin, "put_bucket_policy", Bucket="probe-blocked",
                  Policy=json.dumps({"Version": "2012-10-17", "Statement": [public]}))  # fmt: skip
    return [_answer(admin, "get_public_access_block", Bucket="probe-blocked")[:2], put[:1]]


def multipart_upload_ids_replay() -> Any:
    from moto.s3.models import FakeMultipart

    made = [FakeMultipart("key", {}, ACCOUNT, "us-east-1").id for _ in range(2)]  # type: ignore[arg-type]
    return made[0] == made[1]


def _trust_naming_a_service() -> Any:
    from moto.iam.access_control import IAMPolicyStatement

    trust = IAMPolicyStatement(json.loads(EC2_TRUST)["Statement"][0])
    return _error(lambda: trust._check_principal(f"arn:aws:iam::{ACCOUNT}:user/admin"))


def role_last_used_names_its_region() -> Any:
    _client("iam", _role_session("Used")).list_users()
    return {field: value is not None for field, value in _iam().get_role("Used").role_last_used.items()}


def what_moto_lacks_says_so() -> Any:
    iam = _client("iam", _role_session("Simulating"))
    return _answer(iam, "simulate_principal_policy", PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:role/Simulating",
                   ActionNames=["iam:ListUsers"])  # fmt: skip


def tags_follow_ec2s_restrictions() -> Any:
    ec2 = _client("ec2", _role_session("Tagging", "arn:aws:iam::aws:policy/AmazonEC2FullAccess"))
    launched = ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]

    def tag(key: str, value: str) -> list[Any]:
        return _answer(ec2, "create_tags", Resources=[launched], Tags=[{"Key": key, "Value": value}])

    return [tag("aws:reserved", "v"), tag("k" * 129, "v"), tag("Name", "v" * 257), tag("Name", "a\x1bb"),
            _answer(ec2, "describe_instances"),  # the tag's ESC, raw in moto's XML
            _answer(ec2, "run_instances", ImageId=IMAGE, MinCount=1, MaxCount=1, TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "a\x1bb"}]}])]  # fmt: skip


def admin_keys_chosen_by_the_lab() -> Any:
    iam = _iam()
    iam.create_user("us-east-1", "keyed")
    key = iam.create_access_key("keyed")
    takes_a_key_id = "access_key_id" in inspect.signature(iam.create_access_key).parameters
    return {"keyed by physical_resource_id": iam.access_keys[key.physical_resource_id] is key,
            "CreateAccessKey takes a key id": takes_a_key_id}  # fmt: skip


def replay_without_authorization() -> Any:
    import boto3
    from moto import settings
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        unknown = {"aws_access_key_id": "AKIAUNKNOWNUNKNOWN00", "aws_secret_access_key": "x" * 40}
        iam = boto3.client("iam", region_name="us-east-1", endpoint_url=f"http://{host}:{port}", **unknown)
        answers = []
        for allowance in (settings.INITIAL_NO_AUTH_ACTION_COUNT, float("inf")):  # read on each request
            settings.INITIAL_NO_AUTH_ACTION_COUNT = allowance
            try:
                answers.append("ListUsers answered" if "Users" in iam.list_users() else "?")
            except Exception as error:
                answers.append(error.response["Error"]["Code"])  # type: ignore[attr-defined]
        return answers
    finally:
        server.stop()


def ids_follow_the_lab_seed() -> Any:
    from moto.moto_api._internal import mock_random
    from moto.moto_api._internal.models import moto_api_backend

    ids = []
    for _ in range(2):
        moto_api_backend.reset()
        mock_random.seed(5)
        ids.append(_launch().id)
    return ids[0] == ids[1]


def role_sessions_minted_in_the_lab() -> Any:
    from moto.backends import get_backend

    role = _iam().create_role("ForEc2", "{}", "/", None, "", [], None)
    sts = get_backend("sts")[ACCOUNT]["aws"]
    assumed = sts.assume_role(region_name="us-east-1", role_session_name="i-0123", role_arn=role.arn,
                              policy=None, duration=900, external_id=None)  # fmt: skip
    return [assumed.access_key_id[:4], assumed.arn]


def service_lists_remembered() -> Any:
    import botocore.loaders
    from botocore.session import Session

    Session().get_component("data_loader").list_available_services("service-2")
    listed: list[str] = []
    listdir = os.listdir
    botocore.loaders.os.listdir = lambda path: listed.append(path) or listdir(path)  # type: ignore[attr-defined]
    try:
        Session().get_component("data_loader").list_available_services("service-2")
    finally:
        botocore.loaders.os.listdir = listdir  # type: ignore[attr-defined]
    return len(listed) > 0


def event_names_aliased_once() -> Any:
    from botocore.session import Session

    return Session()._events._alias_name_cache is Session()._events._alias_name_cache


def handler_signatures_read_once() -> Any:
    from botocore.hooks import accepts_kwargs

    asked: list[Any] = []
    getfullargspec = inspect.getfullargspec
    inspect.getfullargspec = lambda func: asked.append(func) or getfullargspec(func)  # type: ignore[assignment]
    try:
        for _ in range(2):
            accepts_kwargs(handler_signatures_read_once)
    finally:
        inspect.getfullargspec = getfullargspec
    return len(asked)


def paths_follow_each_commands_home() -> Any:
    from botocore.loaders import Loader
    from botocore.utils import JSONFileCache

    home, os.environ["HOME"] = os.environ["HOME"], "/elsewhere"
    return [Loader.CUSTOMER_DATA_PATH == f"{home}/.aws/models", JSONFileCache.CACHE_DIR == f"{home}/.aws/boto/cache"]


# What each probe gives: the old behaviour, which the record changes.
ALONE_DOES: dict[str, Any] = {
    "botocore_data_read_once": False,  # a second session decodes EC2's model again
    "instance_type_offerings_of_the_labs_region": True,  # every region's offerings, decoded at import
    "default_subnet_address": "10",  # not the default subnet's 172.31
    "al2023_requires_imdsv2": [None, "optional", 1],  # the AMI says nothing; the launch gets v1 and one hop
    "client_token_makes_launch_idempotent": 2,  # two instances launched for one token
    "started_instances_get_new_credentials": None,  # moto keeps no count of starts
    "metadata_options_keep_what_is_not_named": None,  # HttpEndpoint blanked
    "inactive_keys_are_refused": None,  # an Inactive key is looked up without error
    "ids_look_like_aws": {"user ids are AIDA…": False, "profile ids are AIPA…": False},
    "access_keys_are_never_seeded": {"key ids follow the seed": True, "tokens follow it": False},
    "not_found_says_what_aws_says": [
        ["NotFoundException", "Role NoSuchRole not found"],
        ["NotFoundException", "Instance profile NoSuchProfile not found"],
    ],
    "trust_policy_must_be_json": "Broken",  # created
    # each role created; UpdateAssumeRolePolicy takes no principal, and the service `ec2`
    "trust_policies_validated_as_iam_validates_them": ["WithResource", "NoPrincipal", "ServiceEc2", None, None],
    "metadata_options_in_ec2s_ranges": ["sometimes", 65, "on"],  # stored as given
    "removing_a_role_not_held_is_no_such_entity": ["ValueError", "list.remove(x): x not in list"],
    "described_profile_is_the_profile": {"Id is the association's": True, "Arn follows a replace": False},
    "instance_filters_as_ec2_knows_them": ["NotImplementedError", "NotImplementedError"],  # documented or not
    "ec2_names_a_missing_profile": ["NotFoundException", "Instance profile NoSuchProfile not found"],
    "managed_policies_once": True,  # loaded into aws-cn too
    "region_lists_not_kept_per_backend": True,
    "subnet_addresses_kept_on_the_subnet": True,
    "requests_decided_by_the_labs_evaluator": [
        [
            ["AccessDenied", f"User: arn:aws:iam::{ACCOUNT}:user/nobody is not authorized to perform: iam:CreateUser"],
            [
                "AccessDenied",
                f"User: arn:aws:iam::{ACCOUNT}:user/nobody is not authorized to perform: ec2:DescribeInstances",
            ],
        ],
        [200],  # a boundary of AmazonEC2ReadOnlyAccess leaves iam:ListUsers allowed
        ["TypeError", "argument of type 'NoneType' is not iterable"],  # a trust policy naming a service
    ],  # fmt: skip
    "buckets_decided_by_the_labs_evaluator": [
        [403, ""],  # a GET that is not signed, of a private object: an empty 403, not S3's AccessDenied
        [500],  # of one a bucket policy allows to "*": KeyError('HTTP_AUTHORIZATION') in S3IAMRequest
        [403, "403", "Forbidden"],  # the administrator, under a Deny meant for another role: an empty 403
    ],
    "new_buckets_block_public_access": [
        [404, "NoSuchPublicAccessBlockConfiguration"],  # a new bucket has no Block Public Access
        [200],  # and takes a public policy
    ],
    "multipart_upload_ids_replay": False,  # each upload's id from os.urandom: made again, another id
    "role_changes_reach_sessions_after_the_delay": [1, 0],  # a session's policies, before and right after a detach
    "new_profiles_reach_ec2_after_the_delay": "JustMade",  # EC2 takes a profile made a moment ago
    "a_role_session_names_no_user": [
        "default_user",  # a user moto makes up
        [404, "NoSuchEntity"],
        [404, "NoSuchEntity", "The user with name None cannot be found."],
    ],
    "sts_decodes_the_labs_messages": [500, "ResponseParserError"],  # NotImplementedError, as an HTML page
    "simulations_answered_by_the_evaluator": [500, "ResponseParserError"],  # NotImplementedError, as an HTML page
    "sts_refusals_say_why": [200],  # a session gets a session token
    "role_last_used_names_its_region": {"LastUsedDate": True, "Region": False},
    "what_moto_lacks_says_so": [500, "ResponseParserError"],  # NotImplementedError, as an HTML page
    "tags_follow_ec2s_restrictions": [
        [200],  # a key starting aws: is taken
        [200],  # a key of 129 characters
        [200],  # a value of 257 characters
        [200],  # a value holding ESC
        [200, "ResponseParserError"],  # DescribeInstances, with the ESC raw in its XML
        [200, "ResponseParserError"],  # a launch tagged so: launched, and its answer unreadable
    ],
    "admin_keys_chosen_by_the_lab": {"keyed by physical_resource_id": True, "CreateAccessKey takes a key id": False},
    "replay_without_authorization": [
        "InvalidClientTokenId",
        "ListUsers answered",
    ],  # refused with authorization on, not off
    "ids_follow_the_lab_seed": True,
    "role_sessions_minted_in_the_lab": ["ASIA", f"arn:aws:sts::{ACCOUNT}:assumed-role/ForEc2/i-0123"],
    "service_lists_remembered": True,  # a new session lists the data directories again
    "event_names_aliased_once": False,  # each session works out its aliases anew
    "handler_signatures_read_once": 2,  # inspect asked each time
    "paths_follow_each_commands_home": [True, True],  # computed from HOME at import, kept after
}


def what_the_dependencies_do_alone() -> dict[str, Any]:
    """Run every probe, in the order of ALONE_DOES, in this process (which must not be the lab's)."""
    found: dict[str, Any] = {}
    for name in ALONE_DOES:
        try:
            found[name] = globals()[name]()
        except Exception as error:
            found[name] = f"the probe failed: {type(error).__name__}: {error}"
    assert not any(module.startswith("labkit.labprocess") for module in sys.modules), "the lab's code was loaded"
    return found


def lab_like_env(**more: str) -> dict[str, str]:
    """The environment a lab process gets (labkit.lab.lab_process_env), and `more`."""
    from labkit.lab import lab_process_env

    return {**lab_process_env(), **more}


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("alone")
    env = lab_like_env(HOME=str(home), MOTO_IAM_LOAD_MANAGED_POLICIES="true", INITIAL_NO_AUTH_ACTION_COUNT="0",
                       MOTO_ALLOW_NONEXISTENT_REGION="false")  # fmt: skip
    ran = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, cwd=home, timeout=120)
    assert ran.returncode == 0, ran.stderr
    found: dict[str, Any] = json.loads(ran.stdout)
    return found


def registry_module() -> Any:
    from labkit.labprocess.motofixes import registry

    return registry


def registry() -> tuple[Any, ...]:
    from labkit.labprocess import motofixes

    return tuple(motofixes.REGISTRY)


# -- the registry itself ------------------------------------------------------------------------------
def test_the_versions_checked_are_the_pins_of_constraints() -> None:
    from labkit.labprocess.motofixes import CHECKED

    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)
    assert CHECKED == {package: pins[package] for package in CHECKED}
    assert all(fix.checked == CHECKED for fix in registry())


def test_every_record_says_what_it_changes_and_why() -> None:
    from labkit.labprocess.motofixes import CLI, LAB

    fixes = registry()
    assert len({fix.name for fix in fixes}) == len(fixes) == len(ALONE_DOES)
    for fix in fixes:
        assert fix.aws and fix.dependency and fix.targets and fix.proved_by, fix.name
        assert fix.kind in ("fidelity", "isolation", "lab", "speed", "memory"), fix.name
        assert set(fix.processes) <= {LAB, CLI} and fix.processes, fix.name
        if fix.apply is None:  # its code runs elsewhere, so it cannot be skipped: without it, nothing runs
            assert fix.required and fix.where, fix.name
        if fix.kind == "fidelity":
            assert fix.upstream.strip(), f"{fix.name}: a text to send upstream"
        seams = (registry_module().IAM_SUBCLASS, registry_module().EC2_SUBCLASS, registry_module().MIDDLEWARE)
        if fix.apply is None:
            assert not fix.seam, fix.name
        else:  # a seam where moto offers one; setattr only with the reason none reaches the behaviour
            assert fix.seam in seams or (fix.seam.startswith("setattr: ") and fix.seam[9:].strip()), fix.name


def test_every_record_names_its_two_paired_tests_and_they_exist() -> None:
    from labkit.labprocess.motofixes import ALONE

    defined: dict[str, set[str]] = {}
    for fix in registry():
        assert fix.alone == f"{ALONE}[{fix.name}]" and fix.name in ALONE_DOES, fix.name
        for test in (fix.alone.split("[")[0], *fix.proved_by):
            path, _, function = test.partition("::")
            if path not in defined:
                tree = ast.parse((ROOT / path).read_text())
                defined[path] = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            assert function in defined[path], f"{fix.name} names {test}, which does not exist"


def test_every_where_names_code_that_is_there() -> None:
    """A record whose code runs elsewhere names it (`where`): each name resolves to an attribute of a
    module under labkit.labprocess."""
    import importlib

    named = [(fix.name, place) for fix in registry() if fix.where for place in fix.places]
    assert len(named) >= len([fix for fix in registry() if fix.apply is None])
    for name, place in named:
        parts = place.split(".")
        found: Any = None
        for n in range(len(parts) - 1, 0, -1):  # the longest module prefix, then attributes
            try:
                found = importlib.import_module("labkit.labprocess." + ".".join(parts[:n]))
            except ImportError:
                continue
            for attribute in parts[n:]:
                found = getattr(found, attribute, None)
            break
        assert found is not None, f"{name}: where names {place}, which is not there"


def test_the_committed_registry_list_is_what_the_registry_generates() -> None:
    """docs/registry.md, the list readers see, comes from the records: regenerate it with
    `python -m labkit.labprocess.motofixes.listing > docs/registry.md`."""
    from labkit.labprocess.motofixes.listing import markdown

    committed = (ROOT / "docs" / "registry.md").read_text()
    assert committed == markdown(registry()), "docs/registry.md is stale: regenerate it from the registry"
    assert all(f"### `{fix.name}`" in committed for fix in registry())


def test_every_target_is_there_as_expected_in_the_installed_versions() -> None:
    probe = "import json; from labkit.labprocess import motofixes; " \
            "print(json.dumps({f.name: f.problems() for f in motofixes.REGISTRY}))"  # fmt: skip
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=lab_like_env(), check=True)
    assert {name: problems for name, problems in json.loads(ran.stdout).items() if problems} == {}


# -- (a) the dependency alone still does what each record changes ------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", list(ALONE_DOES))
def test_the_dependency_alone_still_does_the_old_thing(alone: dict[str, Any], name: str) -> None:
    from labkit.labprocess.motofixes import by_name

    fix, found = by_name(name), alone[name]
    retire = (
        f"{name}: the dependency alone no longer does what the record says ({fix.dependency}); it gave {found!r}. "
        f"If an upstream release fixed it, retire the record in labkit/labprocess/motofixes/registry.py."
    )
    assert found == ALONE_DOES[name], retire


# -- (b) the lab does what AWS does, where no other module's tests show it ----------------------------
def test_the_lab_offers_instance_types_in_its_region(lab: labkit.Lab) -> None:
    offered = lab.client("ec2").describe_instance_type_offerings(
        Filters=[{"Name": "instance-type", "Values": ["t3.micro"]}]
    )["InstanceTypeOfferings"]
    assert offered == [{"InstanceType": "t3.micro", "LocationType": "region", "Location": "us-east-1"}]


def test_user_and_profile_ids_look_like_aws(fresh_lab: labkit.Lab) -> None:
    iam = fresh_lab.client("iam")
    user = iam.create_user(UserName="looks-like-aws")["User"]
    profile = iam.create_instance_profile(InstanceProfileName="LooksLikeAws")["InstanceProfile"]
    assert user["UserId"].startswith("AIDA") and len(user["UserId"]) == 21 and user["UserId"].isupper()
    assert profile["InstanceProfileId"].startswith("AIPA") and len(profile["InstanceProfileId"]) == 21


def test_the_lab_holds_aws_managed_policies(lab: labkit.Lab) -> None:
    iam = lab.client("iam")
    policy = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")["Policy"]
    assert policy["PolicyName"] == "IAMReadOnlyAccess" and policy["IsAttachable"]
    listed = iam.get_paginator("list_policies").paginate(Scope="AWS").build_full_result()["Policies"]
    assert len(listed) > 1000


# -- the seams: moto's own classes and functions stay as moto made them ------------------------------
SEAMS_PROBE = """
import importlib, json
from labkit.labprocess import motofixes
from labkit.labprocess.motofixes import registry
motofixes.apply(motofixes.LAB)
from moto.backends import get_backend
from moto.moto_api._internal.models import moto_api_backend

def backends():
    return [type(get_backend("iam")["123456789012"]["aws"]).__name__,
            type(get_backend("ec2")["123456789012"]["us-east-1"]).__name__]

modules = {}
for fix in motofixes.REGISTRY:
    if fix.seam in (registry.IAM_SUBCLASS, registry.EC2_SUBCLASS, registry.MIDDLEWARE):
        for target in fix.targets:
            found = importlib.import_module(target.module)
            for part in target.attribute.split("."):
                found = getattr(found, part)
            if callable(found) and not isinstance(found, type):
                modules.setdefault(fix.name, []).append(found.__module__)
before = backends()
moto_api_backend.reset()
print(json.dumps({"modules": modules, "before": before, "after": backends()}))
"""


def test_the_backend_subclass_is_what_moto_makes_even_after_a_reset_and_moto_is_left_as_it_was() -> None:
    ran = subprocess.run([sys.executable, "-c", SEAMS_PROBE], capture_output=True, text=True, env=lab_like_env(),
                         timeout=120, check=True)  # fmt: skip
    found = json.loads(ran.stdout)
    assert found["before"] == found["after"] == ["LabIAMBackend", "LabEC2Backend"]
    seamed = {fix.name for fix in registry() if not fix.seam.startswith("setattr") and fix.apply is not None}
    assert set(found["modules"]) == seamed and len(seamed) >= 7  # a positive control: each has callables
    for name, modules in found["modules"].items():  # what those records rely on is still moto's own code
        assert all(module.startswith("moto.") for module in modules), (name, modules)


def _refusing_app(status: str, body: bytes) -> Any:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        environ["wsgi.input"].read()
        start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return iter([body])

    return app


def _call(app: Any, body: bytes = b"Action=CreateUser&UserName=x") -> tuple[list[Any], Any]:
    from werkzeug.test import EnvironBuilder

    signed = "AWS4-HMAC-SHA256 Credential=AKIA/20261129/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0"
    environ = EnvironBuilder(method="POST", data=body, content_type="application/x-www-form-urlencoded",
                             headers={"Authorization": signed}).get_environ()  # fmt: skip
    started: list[Any] = []
    out = app(environ, lambda status, headers, *rest: started.append((status, dict(headers))))
    return started, out


def test_the_middleware_passes_what_moto_accepts_through_untouched() -> None:
    from labkit.labprocess.motofixes.middleware import RefusalRewriter

    offered: list[Any] = []
    moto_app = _refusing_app("200 OK", b"<CreateUserResponse/>")
    started, out = _call(RefusalRewriter(moto_app, (lambda request, answer: offered.append(answer),)))
    assert started == [("200 OK", {"Content-Type": "text/xml", "Content-Length": "21"})]
    assert list(out) == [b"<CreateUserResponse/>"] and offered == []  # streamed, never offered to a rewrite


def test_the_middleware_offers_a_refusal_with_its_request_and_replaces_moto_answer() -> None:
    from labkit.labprocess.motofixes.middleware import Answer, RefusalRewriter

    offered: list[Any] = []

    def rewrite(request: Any, answer: Any) -> Any:
        offered.append((request.service, request.action, request.param("UserName"), answer.status, answer.body))
        return Answer(400, "<Error>rewritten, longer</Error>") if request.param("UserName") == "x" else None

    moto_app = _refusing_app("403 FORBIDDEN", b"<Error>moto</Error>")
    started, out = _call(RefusalRewriter(moto_app, (rewrite,)))
    assert offered == [("iam", "CreateUser", "x", 403, "<Error>moto</Error>")]
    assert started == [("400 Bad Request", {"Content-Type": "text/xml", "Content-Length": "32"})]
    assert list(out) == [b"<Error>rewritten, longer</Error>"]
    started, out = _call(RefusalRewriter(moto_app, (rewrite,)), b"Action=CreateUser&UserName=y")  # not rewritten
    assert started == [("403 FORBIDDEN", {"Content-Type": "text/xml", "Content-Length": "19"})]
    assert list(out) == [b"<Error>moto</Error>"]


def test_the_middleware_offers_a_watched_action_its_successes_and_no_other() -> None:
    from labkit.labprocess.motofixes.middleware import Answer, RefusalRewriter

    offered: list[Any] = []

    def rewrite(request: Any, answer: Any) -> Any:
        offered.append((request.action, answer.status))
        return Answer(400, "<Error>no user</Error>")

    moto_app = _refusing_app("200 OK", b"<GetUserResponse/>")
    started, out = _call(RefusalRewriter(moto_app, ((rewrite, frozenset({"iam:GetUser"})),)), b"Action=GetUser")
    assert offered == [("GetUser", 200)] and list(out) == [b"<Error>no user</Error>"]
    assert started[0][0] == "400 Bad Request"
    started, out = _call(RefusalRewriter(moto_app, ((rewrite, frozenset({"iam:GetUser"})),)), b"Action=ListUsers")
    assert offered == [("GetUser", 200)] and list(out) == [b"<GetUserResponse/>"]  # streamed, never offered


def test_the_middleware_offers_what_moto_raised_and_lets_it_go_on_when_no_rewrite_answers() -> None:
    from labkit.labprocess.motofixes.middleware import Answer, RefusalRewriter

    offered: list[Any] = []

    def raising_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        raise NotImplementedError("The simulate_principal_policy action has not been implemented")

    def rewrite(request: Any, answer: Any) -> Any:
        offered.append(answer)
        return Answer(501, "<Error>lacks it</Error>") if request.param("UserName") == "x" else None

    started, out = _call(RefusalRewriter(raising_app, (rewrite,)))
    assert offered == [Answer(500, "", "NotImplementedError: The simulate_principal_policy action has not been "
                                      "implemented")]  # fmt: skip
    assert started == [("501 Not Implemented", {"Content-Type": "text/xml", "Content-Length": "23"})]
    assert list(out) == [b"<Error>lacks it</Error>"]
    with pytest.raises(NotImplementedError):
        _call(RefusalRewriter(raising_app, (rewrite,)), b"Action=CreateUser&UserName=y")


# -- a target that moved ------------------------------------------------------------------------------
@pytest.fixture
def fake_moto(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A module standing for a moto whose `Backend.method` takes (self, name)."""
    module = types.ModuleType("fake_moto")

    class Backend:
        def method(self, name: str) -> str:
            return name

    module.Backend = Backend  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_moto", module)
    return module


def fake_fix(name: str, target: Any, applied: list[str], *, required: bool = False) -> Any:
    from labkit.labprocess.motofixes import Fix

    return Fix(name=name, kind="fidelity", aws="AWS does Y", dependency="moto does X", targets=(target,),
               apply=lambda: applied.append(name), proved_by=(), required=required)  # fmt: skip


def test_a_fix_whose_target_moved_is_reported_by_name_and_skipped(fake_moto: types.ModuleType) -> None:
    from labkit.labprocess.motofixes import LAB, Target, apply

    applied: list[str] = []
    said: list[str] = []
    fixes = [
        fake_fix("fake_there", Target("fake_moto", "Backend.method", ("self", "name")), applied),
        fake_fix("fake_gone", Target("fake_moto", "Backend.renamed"), applied),
        fake_fix("fake_changed", Target("fake_moto", "Backend.method", ("self", "instance_id")), applied),
        fake_fix("fake_no_module", Target("fake_moto.nowhere", "Backend"), applied),
    ]
    missing = apply(LAB, registry=fixes, report=said.append)
    assert applied == ["fake_there"]
    assert missing == ["fake_gone", "fake_changed", "fake_no_module"]
    assert said[0].startswith(
        "labkit: fix fake_gone cannot be applied: fake_moto.Backend.renamed is gone in fake_moto "
    )
    assert said[0].endswith("; running without it.")
    assert "fake_moto.Backend.method takes (self, name), not (self, instance_id, …)" in said[1]
    assert "fake_moto.nowhere.Backend is gone (no module fake_moto.nowhere)" in said[2]


def test_a_required_fix_whose_target_moved_stops_everything_in_one_line(fake_moto: types.ModuleType) -> None:
    from labkit.labprocess.motofixes import LAB, RequiredFixMissing, Target, apply

    applied: list[str] = []
    fixes = [
        fake_fix("fake_needed", Target("fake_moto", "Backend.renamed"), applied, required=True),
        fake_fix("fake_there", Target("fake_moto", "Backend.method"), applied),
    ]
    with pytest.raises(RequiredFixMissing) as stopped:
        apply(LAB, registry=fixes, report=lambda line: None)
    assert applied == []
    message = str(stopped.value)
    assert "\n" not in message and message.startswith(
        "labkit: the lab cannot start: fix fake_needed cannot be applied: fake_moto.Backend.renamed is gone"
    )


def start_lab_process(home: Path, before: str) -> subprocess.Popen[str]:
    """The lab process itself (labkit.labprocess.main), with `before` run first: a moto made to
    look like another version."""
    script = textwrap.dedent("""
        import sys
        from labkit.labprocess.backends import configure_moto
        configure_moto()
    """) + textwrap.dedent(before) + textwrap.dedent("""
        from labkit.labprocess.main import main
        main(["--home", sys.argv[1]])
    """)  # fmt: skip
    home.mkdir(mode=0o700, exist_ok=True)
    return subprocess.Popen([sys.executable, "-c", script, str(home)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=lab_like_env(), cwd=home)  # fmt: skip


@pytest.fixture
def lab_without_a_cache(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A lab on a moto whose AccountSpecificBackend._generate_regions is a plain method (no cache, so
    no `__wrapped__`): the target of region_lists_not_kept_per_backend, as in another moto release."""
    home = tmp_path / "lab"
    process = start_lab_process(home, """
        from moto.core.base_backend import AccountSpecificBackend
        AccountSpecificBackend._generate_regions = AccountSpecificBackend._generate_regions.__wrapped__
    """)  # fmt: skip
    try:
        yield home, process
    finally:
        labkit.down(home)
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.slow
def test_a_lab_whose_moto_lacks_a_fixs_target_starts_without_it_and_says_so(
    lab_without_a_cache: tuple[Path, subprocess.Popen[str]],
) -> None:
    home, process = lab_without_a_cache
    deadline = time.monotonic() + 60
    while read_info(home) is None:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.1)
    info = read_info(home)
    assert info is not None and info.fixes_missing == ["region_lists_not_kept_per_backend"]
    lab = labkit.connect(home, start=False)
    assert "admin" in [user["UserName"] for user in lab.client("iam").list_users()["Users"]]  # it runs
    env = {**os.environ, "LABKIT_HOME": str(home)}
    labkit_command = str(Path(sys.executable).parent / "labkit")
    shown = subprocess.run([labkit_command, "status"], capture_output=True, text=True, env=env, check=True).stdout
    said = subprocess.run([labkit_command, "status", "--json"], capture_output=True, text=True, env=env, check=True)
    assert f"  not applied to this moto: region_lists_not_kept_per_backend (why: lab.log in {home})" in shown
    assert json.loads(said.stdout)["fixes_missing"] == ["region_lists_not_kept_per_backend"]
    labkit.down(home)
    logged = process.communicate(timeout=30)[0]
    assert (
        "labkit: fix region_lists_not_kept_per_backend cannot be applied: "
        "moto.core.base_backend.AccountSpecificBackend._generate_regions.__wrapped__ is gone in moto 5.2.5 "
        "(checked against moto 5.2.5); running without it.\n"
    ) in logged


@pytest.mark.slow
def test_a_lab_whose_moto_lacks_a_required_fixs_target_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    process = start_lab_process(tmp_path / "lab", """
        from moto.ec2.models.instances import InstanceBackend
        del InstanceBackend.modify_instance_metadata_options
    """)  # fmt: skip
    printed = process.communicate(timeout=60)[0]
    assert process.returncode == 1
    assert printed.strip().splitlines()[-1] == (
        "labkit: the lab cannot start: fix metadata_options_keep_what_is_not_named cannot be applied: "
        "moto.ec2.models.instances.InstanceBackend.modify_instance_metadata_options is gone in moto 5.2.5 "
        "(checked against moto 5.2.5), and the lesson needs it; "
        "install the tested versions: pip install -c constraints.txt -e ."
    )
    assert not (tmp_path / "lab" / "lab.json").exists()


if __name__ == "__main__":
    print(json.dumps(what_the_dependencies_do_alone(), indent=1))
