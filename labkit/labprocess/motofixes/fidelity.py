"""The lab's changes to moto where it differs from AWS in what the lesson shows (fidelity), and where
one lab must never share a secret with another (isolation). Each is a record in registry.py; each
function here is that record's `apply`, run once in the lab process.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from labkit.labprocess.keys import SECRETS, fresh_key_id, fresh_secret
from labkit.labprocess.motofixes import middleware, subclass
from labkit.labprocess.motofixes.middleware import Answer, Request

LAB_PARTITION = "aws"

if TYPE_CHECKING:  # a mixin of one of moto's backends (subclass.py): its methods reach moto's by super()
    Backend = Any
else:
    Backend = object


def default_subnet_address() -> None:
    """Fidelity: an instance launched without a subnet gets an address in its AZ's default subnet.

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

    setattr(Instance, "prep_nics", prep_nics)  # noqa: B010 - a patch, said plainly


class MetadataOptionsKeepWhatIsNotNamed(Backend):
    """Fidelity: ModifyInstanceMetadataOptions changes only the options it names.

    moto replaces them all, so `HttpTokens=required` alone would also blank `HttpEndpoint`.
    """

    def modify_instance_metadata_options(self, instance_id: str, **changes: Any) -> Any:
        current = self.get_instance(instance_id).metadata_options
        kept = {
            "http_tokens": current.http_tokens,
            "hop_limit": current.http_put_response_hop_limit,
            "http_endpoint": current.http_endpoint,
            "http_protocol": current.http_protocol_ipv6,
            "metadata_tags": current.instance_metadata_tags,
        }
        given = {name: value for name, value in changes.items() if value is not None}
        return super().modify_instance_metadata_options(instance_id, **{**kept, **given})


def metadata_options_keep_what_is_not_named() -> None:
    subclass.add("ec2", MetadataOptionsKeepWhatIsNotNamed)


def inactive_keys_are_refused() -> None:
    """Fidelity: a request signed with an Inactive access key is refused, as AWS refuses it.

    moto looks the key up and ignores its status, so a deactivated (leaked) key would keep working.
    """
    from moto.iam import access_control

    original = access_control.IAMUserAccessKey.__init__

    def __init__(self: Any, account_id: str, partition: str, access_key_id: str, headers: dict[str, str]) -> None:
        original(self, account_id, partition, access_key_id, headers)
        for user in self.backend.list_users("/", None, None):
            for key in user.access_keys:
                if key.access_key_id == access_key_id and key.status != "Active":
                    raise access_control.CreateAccessKeyFailure(reason="InvalidId")

    setattr(access_control.IAMUserAccessKey, "__init__", __init__)  # noqa: B010


class IdsLookLikeAws(Backend):
    """Fidelity: instance profile ids are AIPA… and user ids AIDA…, as role ids are AROA….

    moto gives them 20 random lower-case characters, which `iam/info` and `list-users` would show.
    """

    def create_user(self, *args: Any, **kwargs: Any) -> Any:
        return _with_id(self, super().create_user(*args, **kwargs), "AIDA")

    def create_instance_profile(self, *args: Any, **kwargs: Any) -> Any:
        return _with_id(self, super().create_instance_profile(*args, **kwargs), "AIPA")


def _with_id(backend: Any, made: Any, prefix: str) -> Any:
    from moto.iam.utils import generate_access_key_id_from_account_id

    made.id = generate_access_key_id_from_account_id(backend.account_id, prefix=prefix, total_length=21)
    return made


def ids_look_like_aws() -> None:
    subclass.add("iam", IdsLookLikeAws)


def access_keys_are_never_seeded() -> None:
    """Isolation: access key ids and secrets (users' keys, role sessions) and session tokens come
    from a real random source, not from moto's seeded one, so that two labs reset to the same
    checkpoint never share a key. moto still draws its own values first, so every other id keeps
    following the seed. The journal records what was drawn, to restore the same keys after a crash."""
    from moto.iam import models
    from moto.sts import models as sts_models

    original = models.AccessKey.__init__
    token = sts_models.random_session_token

    def __init__(self: Any, user_name: str | None, prefix: str, account_id: str, status: str = "Active") -> None:
        original(self, user_name, prefix, account_id, status)
        self.access_key_id = SECRETS.draw(lambda: fresh_key_id(prefix))
        self.secret_access_key = SECRETS.draw(fresh_secret)

    setattr(models.AccessKey, "__init__", __init__)  # noqa: B010
    setattr(sts_models, "random_session_token", lambda: SECRETS.draw(token))  # noqa: B010


class NotFoundSaysWhatAwsSays(Backend):
    """A role or instance profile that does not exist: AWS's wording of NoSuchEntity."""

    def get_role(self, role_name: str) -> Any:
        from moto.iam.exceptions import NotFoundException

        try:
            return super().get_role(role_name)
        except NotFoundException:
            raise NotFoundException(f"The role with name {role_name} cannot be found.") from None

    def get_instance_profile(self, profile_name: str) -> Any:
        from moto.iam.exceptions import NotFoundException

        try:
            return super().get_instance_profile(profile_name)
        except NotFoundException:
            raise NotFoundException(f"Instance Profile {profile_name} cannot be found.") from None


def not_found_says_what_aws_says() -> None:
    subclass.add("iam", NotFoundSaysWhatAwsSays)


class TrustPolicyMustBeJson(Backend):
    """A trust policy that is not JSON: MalformedPolicyDocument."""

    def create_role(self, role_name: str, assume_role_policy_document: str, *args: Any, **kwargs: Any) -> Any:
        from moto.iam.exceptions import MalformedPolicyDocument

        try:
            json.loads(assume_role_policy_document)
        except ValueError:
            raise MalformedPolicyDocument("This policy contains invalid Json") from None
        return super().create_role(role_name, assume_role_policy_document, *args, **kwargs)


def trust_policy_must_be_json() -> None:
    subclass.add("iam", TrustPolicyMustBeJson)


PROFILE_ACTIONS = ("RunInstances", "AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation")


def rewrite_missing_profile(request: Request, answer: Answer) -> Answer | None:
    """An instance profile EC2 cannot find: EC2's InvalidParameterValue, not IAM's NoSuchEntity.

    moto lets IAM's error through EC2's API (404, NoSuchEntity); AWS answers 400 and names the
    parameter: `Value (X) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance
    Profile name` (`.arn` for an ARN). A rewrite of the middleware.
    """
    if (
        request.service != "ec2"
        or request.action not in PROFILE_ACTIONS
        or "<Code>NoSuchEntity</Code>" not in answer.body
    ):
        return None
    name, arn = request.param("IamInstanceProfile.Name"), request.param("IamInstanceProfile.Arn")
    given, field = (name, "name") if name else (arn, "arn")
    if not given:
        return None
    message = escape(
        f"Value ({given}) for parameter iamInstanceProfile.{field} is invalid. "
        f"Invalid IAM Instance Profile {'ARN' if field == 'arn' else field}"
    )
    replaced = f"<Code>InvalidParameterValue</Code><Message>{message}</Message></Error>"
    body = re.sub(r"<Code>NoSuchEntity</Code>.*</Error>", replaced, answer.body, flags=re.S)
    return Answer(400, body)


def ec2_names_a_missing_profile() -> None:
    middleware.add(rewrite_missing_profile)


def rewrite_what_moto_lacks(request: Request, answer: Answer) -> Answer | None:
    """Lab: what moto does not implement says so by name, in one line: 501 NotImplemented, `The
    lab does not emulate iam:SimulatePrincipalPolicy: …`. moto lets NotImplementedError out of its
    app, and its server answers with an HTML page and status 500, which the CLI retries four times
    before it prints `Unable to parse response … invalid XML received`. Any other failure stays as
    moto had it."""
    from moto import __version__
    from moto.core.utils import camelcase_to_underscores

    if not answer.raised.startswith("NotImplementedError"):
        return None
    said = answer.raised.partition(": ")[2]
    action, moto = f"{request.service}:{request.action}", f"moto {__version__}, which plays AWS in the lab,"
    if said == f"The {camelcase_to_underscores(request.action)} action has not been implemented":
        message = f"The lab does not emulate {action}: {moto} lacks it."
    else:
        message = f"The lab does not emulate this {action} request: {moto} says: {said}"
    return Answer(501, "<ErrorResponse><Errors><Error><Type>Receiver</Type><Code>NotImplemented</Code>"
                       f"<Message>{escape(message)}</Message></Error></Errors></ErrorResponse>")  # fmt: skip


def what_moto_lacks_says_so() -> None:
    middleware.add(rewrite_what_moto_lacks)
