"""Why a request is refused, as AWS says it: EC2's UnauthorizedOperation with an encoded
authorization message, STS's DecodeAuthorizationMessage that decodes it, STS's own refusals, and the
trust policy that decides who may assume a role. Each function here is a registry record's `apply`
(motofixes/registry.py), run once in the lab process, or a rewrite of the middleware seam.

The encoded message is sealed with AES-256-GCM under a key drawn from the system's random source
when the lab process applies the fixes, and held only in its memory: nothing in a message, the
journal or the state directory gives it away, so only this lab process can open (and make) one.
A message made before the lab last started is refused as one that has expired.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
import zlib
from typing import Any
from xml.sax.saxutils import escape

from labkit.labprocess import replay
from labkit.labprocess.motofixes import middleware
from labkit.labprocess.motofixes.fidelity import LAB_PARTITION, MOTO_SHORT_REFUSAL, _explicitly_denied
from labkit.labprocess.motofixes.middleware import Answer, Request
from labkit.protocol import ACCOUNT_ID, REGION

STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
SEALED_FOR = f"labkit encoded authorization message, account {ACCOUNT_ID}".encode()  # bound to every message
_key: bytearray = bytearray()  # the lab process's sealing key, drawn once (`keep_a_key`)


def keep_a_key() -> None:
    """Draw the lab process's sealing key, once (the records that seal and unseal messages do)."""
    if not _key:
        _key.extend(secrets.token_bytes(32))


def seal(document: dict[str, Any]) -> str:
    """`document` as an encoded authorization message: only this lab process can open it."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    plain = zlib.compress(json.dumps(document, separators=(",", ":")).encode())
    while True:  # a message that starts with `-` would read as an option: `--encoded-message -UD…` fails
        nonce = secrets.token_bytes(12)
        message = base64.urlsafe_b64encode(nonce + AESGCM(bytes(_key)).encrypt(nonce, plain, SEALED_FOR))
        if not message.startswith(b"-"):
            return message.decode().rstrip("=")


def unseal(message: str) -> dict[str, Any] | None:
    """The document sealed in `message`, or None when this lab process did not make it (forged,
    damaged, or made before the lab last started)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        sealed = base64.urlsafe_b64decode(message.strip() + "=" * (-len(message.strip()) % 4))
        plain = AESGCM(bytes(_key)).decrypt(sealed[:12], sealed[12:], SEALED_FOR)
        document = json.loads(zlib.decompress(plain))
    except (ValueError, InvalidTag, zlib.error):
        return None
    return document if isinstance(document, dict) else None


# -- EC2: UnauthorizedOperation, with the encoded message ---------------------------------------------
INSTANCE_ACTIONS = frozenset({  # EC2 actions on the instance(s) named by InstanceId(.N)
    "TerminateInstances", "StopInstances", "StartInstances", "RebootInstances", "ModifyInstanceAttribute",
    "ModifyInstanceMetadataOptions", "AssociateIamInstanceProfile", "GetConsoleOutput", "GetPasswordData",
    "MonitorInstances", "UnmonitorInstances",
})  # fmt: skip
ASSOCIATION_ACTIONS = frozenset({"ReplaceIamInstanceProfileAssociation", "DisassociateIamInstanceProfile"})
TAGGING_ACTIONS = frozenset({"CreateTags", "DeleteTags"})
RESOURCE_TYPES = {"i": "instance", "vol": "volume", "sg": "security-group", "subnet": "subnet", "vpc": "vpc",
                  "eni": "network-interface"}  # fmt: skip


def rewrite_ec2_refusal(request: Request, answer: Answer) -> Answer | None:
    """Fidelity: EC2 refuses what no policy allows with UnauthorizedOperation and an encoded
    authorization message: `You are not authorized to perform this operation. User: ARN is not
    authorized to perform: ec2:RunInstances on resource: arn:aws:ec2:us-east-1:123456789012:instance/*
    because no identity-based policy allows the ec2:RunInstances action. Encoded authorization
    failure message: …`. moto says AccessDenied and stops after the action. (Describe actions:
    fidelity.rewrite_access_denied; an explicit Deny keeps moto's sentence, as there.)"""
    said = MOTO_SHORT_REFUSAL.search(answer.body)
    if said is None or answer.status != 403 or said["service"] != "ec2" or said["operation"].startswith("Describe"):
        return None
    action = said["action"]
    if _explicitly_denied(request, action):
        return None
    resource = ec2_resource_of(said["operation"], request)
    encoded = seal(decoded_refusal(request.access_key_id, action, resource))
    on = f" on resource: {resource}" if resource else ""
    message = (
        f"You are not authorized to perform this operation. User: {said['arn']} is not authorized to perform: "
        f"{action}{on} because no identity-based policy allows the {action} action. "
        f"Encoded authorization failure message: {encoded}"
    )
    replaced = f"<Code>UnauthorizedOperation</Code><Message>{escape(message)}</Message>"
    return Answer(403, answer.body[: said.start()] + replaced + answer.body[said.end() :])


def ec2_resource_of(operation: str, request: Request) -> str:
    """The resource AWS names when it refuses `operation`, or '' for an action the lab does not map."""
    prefix = f"arn:{LAB_PARTITION}:ec2:{REGION}:{ACCOUNT_ID}:"
    if operation == "RunInstances":
        return f"{prefix}instance/*"
    if operation in INSTANCE_ACTIONS:
        instance_id = request.param("InstanceId") or request.param("InstanceId.1")
        return f"{prefix}instance/{instance_id}" if instance_id else ""
    if operation in ASSOCIATION_ACTIONS:
        from moto.ec2.models import ec2_backends

        associations = ec2_backends[ACCOUNT_ID][REGION].iam_instance_profile_associations
        given = request.param("AssociationId")
        found = [key for key, association in associations.items() if association.association_id == given]
        return f"{prefix}instance/{found[0] if found else '*'}"
    if operation in TAGGING_ACTIONS:
        tagged = request.param("ResourceId.1") or ""
        kind = RESOURCE_TYPES.get(tagged.partition("-")[0])
        return f"{prefix}{kind}/{tagged}" if kind else ""
    return ""


def decoded_refusal(access_key_id: str, action: str, resource: str) -> dict[str, Any]:
    """What DecodeAuthorizationMessage answers for a refusal no policy allowed, in AWS's shape:
    `{"allowed":false,"explicitDeny":false,"matchedStatements":{"items":[]},"failures":{"items":[]},
    "context":{"principal":{…},"action":…,"resource":…,"conditions":{"items":[…]}}}`."""
    from moto.sts.models import sts_backends

    user_id, arn, _ = sts_backends[ACCOUNT_ID][LAB_PARTITION].get_caller_identity(access_key_id, REGION)
    principal = {"id": user_id, "arn": arn}
    if ":user/" in arn:  # a user is also named: {"id": "AIDA…", "name": "alice", "arn": "…:user/alice"}
        principal = {"id": user_id, "name": arn.rpartition("/")[2], "arn": arn}
    service = action.partition(":")[0]
    known = [("aws:Region", REGION), ("aws:Service", service), ("aws:Account", ACCOUNT_ID)]
    known.append((f"{service}:Region", REGION))
    if resource:
        relative = resource.split(":", 5)[5]
        known[1:1] = [("aws:Resource", relative), ("aws:Type", relative.partition("/")[0])]
        known.append(("aws:ARN", resource))
    conditions = [{"key": key, "values": {"items": [{"value": value}]}} for key, value in known]
    return {
        "allowed": False,
        "explicitDeny": False,
        "matchedStatements": {"items": []},
        "failures": {"items": []},
        "context": {"principal": principal, "action": action, "resource": resource or "*",
                    "conditions": {"items": conditions}},
    }  # fmt: skip


def ec2_refusals_carry_an_encoded_message() -> None:
    keep_a_key()
    middleware.add(rewrite_ec2_refusal)


# -- STS: DecodeAuthorizationMessage --------------------------------------------------------------
def answer_decode_authorization_message(request: Request, answer: Answer) -> Answer | None:
    """Fidelity: STS decodes the lab's encoded messages for a caller allowed
    sts:DecodeAuthorizationMessage. moto has no such action: it authorizes the caller (a caller not
    allowed gets its refusal, reworded by rewrite_sts_refusal), then raises NotImplementedError,
    which its server answers with an HTML page and status 500; this answers instead."""
    if (request.service, request.action) != ("sts", "DecodeAuthorizationMessage"):
        return None
    if not answer.raised.startswith("NotImplementedError"):
        return None
    document = unseal(request.param("EncodedMessage") or "")
    # A decode changes nothing, but the journal keeps every request whose action is not a Get, List or
    # Describe: one replayed after a restart (labkit/labprocess/replay.py) carries a message sealed under
    # the previous process's key; its answer is never shown, and it must not stop the replay after it.
    if document is None and not replay.active():
        return sts_error(400, "InvalidAuthorizationMessageException",
                         "The encoded message is not one this lab made, or it was made before the lab last "
                         "started; such messages expire.")  # fmt: skip
    decoded = escape(json.dumps(document or {}, separators=(",", ":")))
    return Answer(200, f'<DecodeAuthorizationMessageResponse xmlns="{STS_XMLNS}"><DecodeAuthorizationMessageResult>'
                       f"<DecodedMessage>{decoded}</DecodedMessage></DecodeAuthorizationMessageResult>"
                       f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                       "</DecodeAuthorizationMessageResponse>")  # fmt: skip


def sts_error(status: int, code: str, message: str) -> Answer:
    return Answer(status, f'<ErrorResponse xmlns="{STS_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
                          f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
                          "</ErrorResponse>")  # fmt: skip


def sts_decodes_the_labs_messages() -> None:
    keep_a_key()
    middleware.add(answer_decode_authorization_message)


# -- STS: refusals in AWS's words ---------------------------------------------------------------------
SESSION_TOKEN, ASSUME_ROLE = "GetSessionToken", "AssumeRole"


def rewrite_sts_refusal(request: Request, answer: Answer) -> Answer | None:
    """Fidelity: STS's refusals read as AWS's. AssumeRole names the role: `User: ARN is not
    authorized to perform: sts:AssumeRole on resource: arn:aws:iam::123456789012:role/NAME`;
    STS's other actions say `… because no identity-based policy allows the sts:ACTION action`;
    GetSessionToken signed with a session's credentials is refused whatever the policies: `Cannot
    call GetSessionToken with session credentials`; and a role that does not exist cannot be
    assumed (AWS answers as for a role the caller may not assume). moto stops after the action,
    lets a session that may call GetSessionToken have one, and gives a caller allowed
    sts:AssumeRole a session of any role ARN, even of no role. An explicit Deny keeps moto's
    sentence."""
    if request.service != "sts":
        return None
    if request.action == SESSION_TOKEN and "X-Amz-Security-Token" in request.headers:
        return sts_error(403, "AccessDenied", "Cannot call GetSessionToken with session credentials")
    if request.action == ASSUME_ROLE and answer.status == 200:
        # replayed as it was acknowledged: an AssumeRole journaled before sts_refusals_say_why may name no role
        return None if replay.active() else _no_such_role_to_assume(request)
    said = MOTO_SHORT_REFUSAL.search(answer.body)
    if said is None or answer.status != 403 or said["service"] != "sts" or _explicitly_denied(request, said["action"]):
        return None
    action = said["action"]
    if said["operation"] == ASSUME_ROLE and request.param("RoleArn"):
        why = f" on resource: {request.param('RoleArn')}"
    else:
        why = f" because no identity-based policy allows the {action} action"
    message = f"User: {said['arn']} is not authorized to perform: {action}{why}"
    replaced = f"<Code>AccessDenied</Code><Message>{escape(message)}</Message>"
    return Answer(403, answer.body[: said.start()] + replaced + answer.body[said.end() :])


def _no_such_role_to_assume(request: Request) -> Answer | None:
    """AccessDenied for an AssumeRole moto answered, when its RoleArn names no role; else None."""
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    role_arn = request.param("RoleArn") or ""
    try:
        iam_backends[ACCOUNT_ID][LAB_PARTITION].get_role_by_arn(role_arn)
        return None
    except NotFoundException:
        _, caller, _ = sts_backends[ACCOUNT_ID][LAB_PARTITION].get_caller_identity(request.access_key_id, REGION)
        refused = f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        return sts_error(403, "AccessDenied", refused)


def sts_refusals_say_why() -> None:
    middleware.add(rewrite_sts_refusal, watch=(f"sts:{SESSION_TOKEN}", f"sts:{ASSUME_ROLE}"))


# -- the trust policy: who may assume a role ----------------------------------------------------------
def trust_policies_name_who_may_assume() -> None:
    """Fidelity: a trust policy that names only a service (`"Principal": {"Service":
    "ec2.amazonaws.com"}`) lets no user or role session assume the role: AWS refuses it with
    AccessDenied (`… is not authorized to perform: sts:AssumeRole on resource: ROLE_ARN`). moto
    looks for the caller among the statement's `AWS` principals, finds none (None), and fails with
    a TypeError: its server answers 500 and the CLI retries, then prints `Unable to parse response`.
    """
    from moto.iam.access_control import IAMPolicyStatement

    def _check_principal(self: Any, principal: str) -> bool:
        expected = self._statement.get("Principal")
        if not expected:
            return True
        if isinstance(expected, str):
            return expected == "*" or expected == principal
        named = expected.get("AWS")
        if named is None:  # only services or federated identities: no IAM caller matches
            return False
        named = [named] if isinstance(named, str) else list(named)
        return "*" in named or principal in named

    setattr(IAMPolicyStatement, "_check_principal", _check_principal)  # noqa: B010
