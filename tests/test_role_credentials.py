"""What a role's credentials get from IAM, STS and EC2 (and what the notebooks' own calls get), as AWS
answers: code, HTTP status, message and the shape of the answer, each checked against the AWS page or
public transcript named in its test. Commands a student types run through the real `aws` CLI on the
instance; the HTTP status is read with the same role's keys through boto3. The audit these tests back
is docs/fidelity.md; the lab's changes to moto are records in labkit/labprocess/motofixes/registry.py.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

import labkit
from conftest import ROLE, Demo, imds_get

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
NO_USER = "Must specify userName when calling with non-User credentials"
ENCODED = re.compile(r" Encoded authorization failure message: (?P<message>[A-Za-z0-9_-]+)$")
DECODE = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:DecodeAuthorizationMessage",
                                                  "Resource": "*"}]}  # fmt: skip


def session_arn(demo: Demo) -> str:
    """The instance's role session, named after the instance."""
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/{demo.instance_id}"


def as_the_role(demo: Demo, service: str) -> Any:
    """A boto3 client signing with the instance's own credentials, from its metadata service."""
    url = f"http://169.254.169.254/latest/meta-data/iam/security-credentials/{ROLE}"
    document = json.loads(demo.box.run(imds_get(url)).stdout)
    keys = {"aws_access_key_id": document["AccessKeyId"], "aws_secret_access_key": document["SecretAccessKey"],
            "aws_session_token": document["Token"]}  # fmt: skip
    return demo.lab.client(service, **keys)


def refusal(call: Any, **kwargs: Any) -> tuple[int, str, str]:
    """HTTP status, code and message of a refused boto3 call."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def signed_by(lab: labkit.Lab, key: dict[str, str], service: str) -> Any:
    return lab.client(service, aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


def cli_error(demo: Demo, command: str) -> str:
    """What the instance's `aws` prints when AWS refuses `command` (exit status 255, nothing on stdout)."""
    result = demo.box.run(command)
    assert (result.exit_code, result.stdout) == (255, ""), result
    return result.stderr.strip()


# -- IAM: a role's session names no user ------------------------------------------------------------
def test_get_user_with_role_credentials_asks_for_a_user_name(attached: Demo) -> None:
    # hashicorp/aws-sdk-go-base, servicemocks/mock.go, IamResponse_GetUser_federatedFailure (AWS's answer to
    # GetUser signed by non-user credentials): HTTP 400, <Type>Sender</Type>, <Code>ValidationError</Code>,
    # <Message>Must specify userName when calling with non-User credentials</Message>. IAM API reference,
    # GetUser: "If you do not specify a user name, IAM determines the user name implicitly based on the AWS
    # access key ID used to sign the request."
    said = cli_error(attached, "aws iam get-user")
    assert said == f"An error occurred (ValidationError) when calling the GetUser operation: {NO_USER}"
    assert refusal(as_the_role(attached, "iam").get_user) == (400, "ValidationError", NO_USER)
    named = attached.box.run("aws iam get-user --user-name alice")  # naming the user works: IAMReadOnlyAccess
    assert named.exit_code == 0 and json.loads(named.stdout)["User"]["UserName"] == "alice"
    assert attached.iam.get_user()["User"]["UserName"] == "admin"  # a user's own key still names its user


def test_calls_that_default_to_the_callers_user_ask_a_role_for_one(attached: Demo) -> None:
    # hashicorp/terraform-provider-aws, internal/service/iam/access_key.go: "ListAccessKeys requires UserName
    # field in certain scenarios: ValidationError: Must specify userName when calling with non-User
    # credentials". IAM API reference, ListAccessKeys, ListMFADevices, ListSigningCertificates,
    # ListSSHPublicKeys: without UserName, the user is determined implicitly from the signing access key.
    iam = as_the_role(attached, "iam")
    for call in (iam.list_access_keys, iam.list_mfa_devices, iam.list_signing_certificates, iam.list_ssh_public_keys):
        assert refusal(call) == (400, "ValidationError", NO_USER), call
    said = cli_error(attached, "aws iam list-access-keys")
    assert said == f"An error occurred (ValidationError) when calling the ListAccessKeys operation: {NO_USER}"
    assert iam.list_access_keys(UserName="alice")["AccessKeyMetadata"] == []


# -- IAM: what the role reads about itself ----------------------------------------------------------
def test_get_role_answers_in_aws_shape_with_where_it_was_last_used(attached: Demo) -> None:
    # IAM API reference: Role (GetRole's answer: Path, RoleName, RoleId, Arn, CreateDate,
    # AssumeRolePolicyDocument, MaxSessionDuration, RoleLastUsed; Description and PermissionsBoundary only
    # when set) and RoleLastUsed: "the date and time and the Region in which the role was last used", returned
    # by GetRole. The AWS CLI reference's get-role example: "MaxSessionDuration": 3600,
    # "RoleLastUsed": {"LastUsedDate": "2019-11-18T05:12:00Z", "Region": "us-east-1"}.
    role = json.loads(attached.box.run(f"aws iam get-role --role-name {ROLE}").stdout)["Role"]
    assert set(role) == {"Path", "RoleName", "RoleId", "Arn", "CreateDate", "AssumeRolePolicyDocument",
                         "MaxSessionDuration", "RoleLastUsed"}  # fmt: skip
    assert (role["Arn"], role["MaxSessionDuration"], role["RoleId"][:4]) == (ROLE_ARN, 3600, "AROA")
    assert set(role["RoleLastUsed"]) == {"LastUsedDate", "Region"} and role["RoleLastUsed"]["Region"] == "us-east-1"
    # IAM API reference, ListAttachedRolePolicies: AttachedPolicies (PolicyName, PolicyArn), IsTruncated; the
    # CLI pages through and prints AttachedPolicies alone (the same `aws` runs against AWS).
    policies = [{"PolicyName": "IAMReadOnlyAccess", "PolicyArn": "arn:aws:iam::aws:policy/IAMReadOnlyAccess"}]
    listed = as_the_role(attached, "iam").list_attached_role_policies(RoleName=ROLE)
    assert (listed["AttachedPolicies"], listed["IsTruncated"]) == (policies, False)
    printed = attached.box.run(f"aws iam list-attached-role-policies --role-name {ROLE}").stdout
    assert json.loads(printed) == {"AttachedPolicies": policies}
    inline = as_the_role(attached, "iam").list_role_policies(RoleName=ROLE)  # IAM API reference, ListRolePolicies
    assert (inline["PolicyNames"], inline["IsTruncated"]) == ([], False)


def test_the_notebooks_association_calls_answer_in_aws_shape(demo: Demo) -> None:
    # AWS CLI reference, associate-iam-instance-profile example: {"IamInstanceProfileAssociation":
    # {"InstanceId": …, "State": "associating", "AssociationId": "iip-assoc-…", "IamInstanceProfile": {"Id": …,
    # "Arn": …}}}; describe-iam-instance-profile-associations example: the same fields, "State": "associated".
    # aws-samples/one-observability-demo#201: "An error occurred (IncorrectState) when calling the
    # AssociateIamInstanceProfile operation: There is an existing association for instance i-00fd9028cfc49c644".
    made = demo.ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": ROLE}, InstanceId=demo.instance_id)
    association = made["IamInstanceProfileAssociation"]
    profile = demo.iam.get_instance_profile(InstanceProfileName=ROLE)["InstanceProfile"]
    assert association == {"AssociationId": association["AssociationId"], "InstanceId": demo.instance_id,
                           "IamInstanceProfile": {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]},
                           "State": "associating"}  # fmt: skip
    assert re.fullmatch(r"iip-assoc-[0-9a-f]{17}", association["AssociationId"])
    described = demo.ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
    assert described == [{**association, "State": "associated"}]
    again = demo.ec2.associate_iam_instance_profile
    assert refusal(again, IamInstanceProfile={"Name": ROLE}, InstanceId=demo.instance_id) == (
        400, "IncorrectState", f"There is an existing association for instance {demo.instance_id}")  # fmt: skip


# -- EC2: UnauthorizedOperation, with the encoded message -----------------------------------------------
def test_ec2_refuses_a_role_with_unauthorized_operation_and_a_message(attached: Demo) -> None:
    # DataDog/stratus-red-team, docs/attack-techniques/AWS/aws.execution.ec2-launch-unusual-instances.md (the
    # CloudTrail record of an assumed-role session's RunInstances): errorCode Client.UnauthorizedOperation,
    # "You are not authorized to perform this operation. User: arn:aws:sts::…:assumed-role/…/… is not
    # authorized to perform: ec2:RunInstances on resource: arn:aws:ec2:REGION:ACCOUNT:instance/* because no
    # identity-based policy allows the ec2:RunInstances action. Encoded authorization failure message: T-kS…".
    # STS API reference, DecodeAuthorizationMessage: "the request returns a Client.UnauthorizedOperation
    # response (an HTTP 403 response)".
    before = len(attached.lab.instances())
    said = cli_error(attached, "aws ec2 run-instances --image-id ami-03c3da4cfa8e8943a --instance-type t3.micro")
    expected = (
        "An error occurred (UnauthorizedOperation) when calling the RunInstances operation: You are not "
        f"authorized to perform this operation. User: {session_arn(attached)} is not authorized to perform: "
        f"ec2:RunInstances on resource: arn:aws:ec2:us-east-1:{ACCOUNT}:instance/* because no identity-based "
        "policy allows the ec2:RunInstances action. Encoded authorization failure message: "
    )
    assert said.startswith(expected) and ENCODED.search(said), said
    status, code, message = refusal(as_the_role(attached, "ec2").run_instances, ImageId="ami-03c3da4cfa8e8943a",
                                    MinCount=1, MaxCount=1)  # fmt: skip
    assert (status, code) == (403, "UnauthorizedOperation") and ENCODED.search(message)
    assert len(attached.lab.instances()) == before


def test_each_ec2_refusal_names_its_resource(attached: Demo) -> None:
    # AWS Service Authorization Reference, Amazon EC2: TerminateInstances, ModifyInstanceMetadataOptions,
    # CreateTags and the instance profile association actions act on the resource type instance,
    # arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}; a transcript of terminate-instances
    # refused to a user: "… is not authorized to perform: ec2:TerminateInstances on resource:
    # arn:aws:ec2:eu-north-1:178735646603:instance/i-09201cc89e07ecdb6 because no identity-based policy allows
    # the ec2:TerminateInstances action".
    instance = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{attached.instance_id}"
    association = attached.ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"][0]
    commands = {
        "TerminateInstances": f"aws ec2 terminate-instances --instance-ids {attached.instance_id}",
        "ModifyInstanceMetadataOptions": f"aws ec2 modify-instance-metadata-options --instance-id "
        f"{attached.instance_id} --http-tokens required",
        "CreateTags": f"aws ec2 create-tags --resources {attached.instance_id} --tags Key=owner,Value=me",
        "DisassociateIamInstanceProfile": "aws ec2 disassociate-iam-instance-profile --association-id "
        f"{association['AssociationId']}",
        "ReplaceIamInstanceProfileAssociation": "aws ec2 replace-iam-instance-profile-association --association-id "
        f"{association['AssociationId']} --iam-instance-profile Name={ROLE}",
        "AssociateIamInstanceProfile": f"aws ec2 associate-iam-instance-profile --instance-id {attached.instance_id} "
        f"--iam-instance-profile Name={ROLE}",
    }
    for operation, command in commands.items():
        said = cli_error(attached, command)
        assert said.startswith(
            f"An error occurred (UnauthorizedOperation) when calling the {operation} operation: You are not "
            f"authorized to perform this operation. User: {session_arn(attached)} is not authorized to perform: "
            f"ec2:{operation} on resource: {instance} because no identity-based policy allows the ec2:{operation} "
            "action. Encoded authorization failure message: "
        ), said
    assert [i.state for i in attached.lab.instances() if i.instance_id == attached.instance_id] == ["running"]
    assert association_of(attached) == association["AssociationId"]


def association_of(demo: Demo) -> str:
    found = demo.ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
    return str(found[0]["AssociationId"])


# -- STS: DecodeAuthorizationMessage ----------------------------------------------------------------
def run_instances_refused(demo: Demo) -> str:
    """The encoded message of RunInstances refused to the instance's role."""
    found = ENCODED.search(cli_error(demo, "aws ec2 run-instances --image-id ami-03c3da4cfa8e8943a"))
    assert found is not None
    return found["message"]


def refused_as_decoded(principal: dict[str, str], action: str, resource: str) -> dict[str, Any]:
    def condition(key: str, value: str) -> dict[str, Any]:
        return {"key": key, "values": {"items": [{"value": value}]}}

    relative = resource.split(":", 5)[5]
    return {
        "allowed": False,
        "explicitDeny": False,
        "matchedStatements": {"items": []},
        "failures": {"items": []},
        "context": {
            "principal": principal,
            "action": action,
            "resource": resource,
            "conditions": {"items": [
                condition("aws:Region", "us-east-1"), condition("aws:Resource", relative),
                condition("aws:Type", relative.partition("/")[0]), condition("aws:Service", "ec2"),
                condition("aws:Account", ACCOUNT), condition("ec2:Region", "us-east-1"), condition("aws:ARN", resource),
            ]},
        },
    }  # fmt: skip


def test_a_principal_allowed_to_decode_reads_why_it_was_refused(attached: Demo) -> None:
    # STS API reference, DecodeAuthorizationMessage: DecodedMessage says whether an explicit deny refused the
    # request, the principal, the action, the resource and the condition keys. Transcripts of decoded EC2
    # refusals: chiranj/eks, README.md (an instance's role session: "principal":{"id":"AROA…:i-0da1…",
    # "arn":"arn:aws:sts::…:assumed-role/…/i-0da1…"}, "resource":"arn:aws:ec2:us-east-1:…:instance/*",
    # "conditions":{"items":[{"key":"aws:Region","values":{"items":[{"value":"us-east-1"}]}},…]});
    # kubermatic/docs#1035 and vmware-archive/terraforming-aws#73 (a user: {"allowed":false,
    # "explicitDeny":false,"matchedStatements":{"items":[]},"failures":{"items":[]},"context":{"principal":
    # {"id":"AIDA…","name":…,"arn":"arn:aws:iam::…:user/…"},…}}).
    message = run_instances_refused(attached)
    attached.iam.put_role_policy(RoleName=ROLE, PolicyName="decode", PolicyDocument=json.dumps(DECODE))
    decoded = attached.box.run(f"aws sts decode-authorization-message --encoded-message {message}")
    assert decoded.exit_code == 0, decoded
    role_id = attached.iam.get_role(RoleName=ROLE)["Role"]["RoleId"]
    session = {"id": f"{role_id}:{attached.instance_id}", "arn": session_arn(attached)}
    expected = refused_as_decoded(session, "ec2:RunInstances", f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*")
    assert list(json.loads(decoded.stdout)) == ["DecodedMessage"]
    assert json.loads(json.loads(decoded.stdout)["DecodedMessage"]) == expected
    admin_sts = attached.lab.client("sts")  # the console's person, AdministratorAccess, decodes it too
    assert json.loads(admin_sts.decode_authorization_message(EncodedMessage=message)["DecodedMessage"]) == expected

    key = attached.iam.create_access_key(UserName="alice")["AccessKey"]  # a user: its principal is also named
    alice = signed_by(attached.lab, key, "ec2")
    status, code, said = refusal(alice.run_instances, ImageId="ami-03c3da4cfa8e8943a", MinCount=1, MaxCount=1)
    found = ENCODED.search(said)
    assert (status, code) == (403, "UnauthorizedOperation") and found is not None
    user = attached.iam.get_user(UserName="alice")["User"]
    principal = {"id": user["UserId"], "name": "alice", "arn": user["Arn"]}
    decoded = admin_sts.decode_authorization_message(EncodedMessage=found["message"])
    resource = expected["context"]["resource"]
    assert json.loads(decoded["DecodedMessage"]) == refused_as_decoded(principal, "ec2:RunInstances", resource)


def test_a_principal_not_allowed_to_decode_is_told_so(attached: Demo) -> None:
    # AWS IAM User Guide, "Troubleshooting access denied error messages": an implicit deny reads "… is not
    # authorized to perform: ACTION because no identity-based policy allows the ACTION action" (no "on
    # resource" for an action without resource types); a transcript: "An error occurred (AccessDenied) when
    # calling the DecodeAuthorizationMessage operation: User: arn:aws:iam::…:user/… is not authorized to
    # perform: sts:DecodeAuthorizationMessage because no identity-based policy allows the
    # sts:DecodeAuthorizationMessage action". AWS re:Post, ec2-not-auth-launch: without the permission "the
    # decode operation fails".
    message = run_instances_refused(attached)
    said = cli_error(attached, f"aws sts decode-authorization-message --encoded-message {message}")
    why = (
        f"User: {session_arn(attached)} is not authorized to perform: sts:DecodeAuthorizationMessage because no "
        "identity-based policy allows the sts:DecodeAuthorizationMessage action"
    )
    assert said == f"An error occurred (AccessDenied) when calling the DecodeAuthorizationMessage operation: {why}"
    decode = as_the_role(attached, "sts").decode_authorization_message
    assert refusal(decode, EncodedMessage=message) == (403, "AccessDenied", why)


def test_only_this_lab_process_can_decode_its_messages(attached: Demo) -> None:
    # botocore's STS model (AWS's): InvalidAuthorizationMessageException, httpStatusCode 400, "returned if the
    # message passed to DecodeAuthorizationMessage was invalid … or if the message has expired". STS API
    # reference: "The message is encoded because the details of the authorization status can contain
    # privileged information that the user who requested the operation should not see."
    message = run_instances_refused(attached)
    sealed = base64.urlsafe_b64decode(message + "=" * (-len(message) % 4))
    for plain in (ROLE.encode(), b"RunInstances", attached.instance_id.encode(), b"allowed"):
        assert plain not in sealed  # nothing readable without the lab's key
    changed = message[:20] + ("A" if message[20] != "A" else "B") + message[21:]
    elsewhere = base64.urlsafe_b64encode(secrets.token_bytes(len(sealed))).decode().rstrip("=")
    decode = attached.lab.client("sts").decode_authorization_message
    for forged in (changed, elsewhere, "not-a-message"):
        status, code, _ = refusal(decode, EncodedMessage=forged)
        assert (status, code) == (400, "InvalidAuthorizationMessageException"), forged
    assert json.loads(decode(EncodedMessage=message)["DecodedMessage"])["context"]["action"] == "ec2:RunInstances"


@pytest.mark.slow
def test_a_decode_before_a_restart_neither_survives_it_nor_stops_it(tmp_path: Path) -> None:
    # As above (InvalidAuthorizationMessageException, "if the message has expired"): the lab's key lives in its
    # process, so a restart expires every message; the journal keeps the decode (not a Get, List or Describe)
    # and must still replay every change after it.
    home = tmp_path / "lab"
    lab = labkit.connect(home)
    try:
        key = lab.client("iam").create_access_key(UserName="alice")["AccessKey"]
        alice = signed_by(lab, key, "ec2")
        found = ENCODED.search(refusal(alice.run_instances, ImageId="ami-03c3da4cfa8e8943a", MinCount=1, MaxCount=1)[2])
        assert found is not None
        lab.client("sts").decode_authorization_message(EncodedMessage=found["message"])
        lab.client("iam").create_user(UserName="after-the-decode")
        labkit.down(home)
        lab = labkit.connect(home)
        assert lab.info.problem == "" and not (home / "journal.jsonl.unreplayed").exists()
        assert "after-the-decode" in [u["UserName"] for u in lab.client("iam").list_users()["Users"]]
        decode = lab.client("sts").decode_authorization_message
        assert refusal(decode, EncodedMessage=found["message"])[:2] == (400, "InvalidAuthorizationMessageException")
    finally:
        labkit.down(home)


# -- STS: refusals -------------------------------------------------------------------------------------
def test_sts_refuses_a_role_session_in_aws_words(attached: Demo) -> None:
    # HackTricks-wiki/hacktricks-cloud, pentesting-cloud/aws-security/aws-unauthenticated-enum-access/
    # aws-iam-and-sts-unauthenticated-enum.md: "An error occurred (AccessDenied) when calling the AssumeRole
    # operation: User: arn:aws:iam::…:user/testenv is not authorized to perform: sts:AssumeRole on resource:
    # arn:aws:iam::…:role/…" (whether the role exists or not). aws/aws-sdk-js#3670 (an instance's role, allowed
    # sts:GetSessionToken): "AccessDenied: Cannot call GetSessionToken with session credentials";
    # apache/hadoop#6538: the same, "Status Code: 403".
    said = cli_error(attached, f"aws sts assume-role --role-arn {ROLE_ARN} --role-session-name me")
    assert said == (
        "An error occurred (AccessDenied) when calling the AssumeRole operation: User: "
        f"{session_arn(attached)} is not authorized to perform: sts:AssumeRole on resource: {ROLE_ARN}"
    )
    no_session = "Cannot call GetSessionToken with session credentials"
    said = cli_error(attached, "aws sts get-session-token")
    assert said == f"An error occurred (AccessDenied) when calling the GetSessionToken operation: {no_session}"
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:*", "Resource": "*"}]}
    attached.iam.put_role_policy(RoleName=ROLE, PolicyName="sts", PolicyDocument=json.dumps(allow))
    assert refusal(as_the_role(attached, "sts").get_session_token) == (403, "AccessDenied", no_session)


def test_only_ec2_may_assume_a_role_that_trusts_only_ec2(attached: Demo) -> None:
    # HackTricks (as above): "User: arn:aws:iam::…:user/… is not authorized to perform: sts:AssumeRole on
    # resource: arn:aws:iam::…:role/…", for a role that exists and for one that does not. IAM User Guide, role
    # trust policies: only the principals a role's trust policy names may assume it (DemoRoleForEC2 names the
    # service ec2.amazonaws.com).
    sts = attached.lab.client("sts")
    admin = f"arn:aws:iam::{ACCOUNT}:user/admin"
    for role_arn in (ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:role/NoSuchRole"):
        refused = f"User: {admin} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        assert refusal(sts.assume_role, RoleArn=role_arn, RoleSessionName="me") == (403, "AccessDenied", refused)
    trust = {"Effect": "Allow", "Principal": {"AWS": admin}, "Action": "sts:AssumeRole"}
    trusts_admin = {"Version": "2012-10-17", "Statement": [trust]}
    attached.iam.create_role(RoleName="TrustsTheAdmin", AssumeRolePolicyDocument=json.dumps(trusts_admin))
    assumed = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/TrustsTheAdmin", RoleSessionName="me")
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/TrustsTheAdmin/me"
    identity = json.loads(attached.box.run("aws sts get-caller-identity").stdout)  # EC2 itself still assumes it
    assert identity["Arn"] == session_arn(attached)


# -- what the lab does not emulate -----------------------------------------------------------------------
def test_an_action_moto_lacks_says_so_at_once(attached: Demo) -> None:
    # The lab's rule (docs/fidelity.md; /work/shared/STYLE.md, "fail loudly where the emulation stops"): an
    # action the lab does not emulate says so by name, in one line, and is not retried. IAMReadOnlyAccess
    # allows iam:ListServiceSpecificCredentials, which moto does not implement.
    from moto import __version__

    command = "aws iam list-service-specific-credentials --user-name alice"
    said = cli_error(attached, command)
    moto = f"moto {__version__}, which plays AWS in the lab,"
    lacks = f"The lab does not emulate iam:ListServiceSpecificCredentials: {moto} lacks it."
    calling = "when calling the ListServiceSpecificCredentials operation"
    assert said == f"An error occurred (NotImplemented) {calling}: {lacks}"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        as_the_role(attached, "iam").list_service_specific_credentials(UserName="alice")
    metadata = caught.value.response["ResponseMetadata"]
    assert (metadata["HTTPStatusCode"], metadata["RetryAttempts"], caught.value.response["Error"]["Message"]) == (
        501, 0, lacks)  # fmt: skip


def test_an_encoded_message_never_reads_as_a_command_line_option() -> None:
    # AWS re:Post, ec2-not-auth-launch: "aws sts decode-authorization-message --encoded-message encoded-message"
    # is how a student decodes one; the CLI takes a value that starts with `-` for an option, so no message the
    # lab makes starts with one (base64url: 1 in 64 would).
    from labkit.labprocess.motofixes import authorization

    authorization.keep_a_key()
    messages = [authorization.seal({"n": n}) for n in range(1000)]
    assert not [message for message in messages if message.startswith("-")]
    assert [authorization.unseal(message) for message in messages[:3]] == [{"n": 0}, {"n": 1}, {"n": 2}]
