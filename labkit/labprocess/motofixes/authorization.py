"""What a refusal stands for, as AWS encodes it: EC2's encoded authorization messages (sealed here,
for decisions.py's UnauthorizedOperation), STS's DecodeAuthorizationMessage that opens them, and
GetSessionToken refused to a session. Each function here is a registry record's `apply`
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
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from labkit.labprocess import replay
from labkit.labprocess.motofixes import middleware
from labkit.labprocess.motofixes.middleware import Answer, Request
from labkit.protocol import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from labkit.labprocess.evaluation import Decision
    from labkit.labprocess.principals import Principal

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


def _values(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


CALLERS_KEYS = frozenset({"ec2:SourceInstanceARN"})  # describe the caller, not the request


# -- the decoded message: what a refusal stands for ------------------------------------------------
def decoded_refusal(caller: Principal, action: str, resource: str, decision: Decision,
                    context: dict[str, str | list[str]]) -> dict[str, Any]:  # fmt: skip
    """What DecodeAuthorizationMessage answers for a refusal, in AWS's shape:
    `{"allowed":false,"explicitDeny":false,"matchedStatements":{"items":[]},"failures":{"items":[]},
    "context":{"principal":{…},"action":…,"resource":…,"conditions":{"items":[…]}}}`: the statements
    that denied it explicitly, and the request's condition keys (`iam:PassedToService` for a role
    passed to EC2, `aws:RequestedRegion`, …)."""
    principal = {"id": caller.user_id, "arn": caller.arn}
    if caller.name:  # a user is also named: {"id": "AIDA…", "name": "alice", "arn": "…:user/alice"}
        principal = {"id": caller.user_id, "name": caller.name, "arn": caller.arn}
    service = action.partition(":")[0]
    known: list[tuple[str, str | list[str]]] = [("aws:Region", REGION), ("aws:Service", service),
                                                ("aws:Account", ACCOUNT_ID), (f"{service}:Region", REGION)]  # fmt: skip
    if resource.startswith("arn:"):
        relative = resource.split(":", 5)[5]
        known[1:1] = [("aws:Resource", relative), ("aws:Type", relative.partition("/")[0].partition(":")[0])]
        known.append(("aws:ARN", resource))
    shown = {key for key, _ in known}
    known += [(key, value) for key, value in context.items()  # the request's own keys of the action's service
              if key.partition(":")[0] == service and key not in shown and key not in CALLERS_KEYS]  # fmt: skip
    conditions = [{"key": key, "values": {"items": [{"value": v} for v in _values(value)]}} for key, value in known]
    matched = [{"statementId": m.sid, "effect": m.effect, "principals": {"items": [{"value": caller.user_id}]},
                "principalGroups": {"items": []}, "actions": {"items": [{"value": action}]},
                "resources": {"items": [{"value": resource or "*"}]}, "conditions": {"items": []}}
               for m in decision.matched if m.effect == "Deny"]  # fmt: skip
    return {
        "allowed": False,
        "explicitDeny": bool(decision.explicit_deny_in),
        "matchedStatements": {"items": matched},
        "failures": {"items": []},
        "context": {"principal": principal, "action": action, "resource": resource or "*",
                    "conditions": {"items": conditions}},
    }  # fmt: skip


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


# -- STS: GetSessionToken with a session's credentials -----------------------------------------------
SESSION_TOKEN = "GetSessionToken"


def rewrite_sts_refusal(request: Request, answer: Answer) -> Answer | None:
    """Fidelity: GetSessionToken signed with a session's credentials is refused whatever the
    policies: `Cannot call GetSessionToken with session credentials`. moto lets a session that may
    call GetSessionToken have one. (STS's other refusals: decisions.py.)"""
    if (request.service, request.action) == ("sts", SESSION_TOKEN) and "X-Amz-Security-Token" in request.headers:
        return sts_error(403, "AccessDenied", "Cannot call GetSessionToken with session credentials")
    return None


def sts_refusals_say_why() -> None:
    middleware.add(rewrite_sts_refusal, watch=(f"sts:{SESSION_TOKEN}",))
