"""What IAM answers a role's session about itself. A role's credentials (an instance's, from the
metadata service) belong to no IAM user, so IAM cannot work out the user of a call that names none;
and the role records when and where its sessions were last used. Each function here is a registry
record's `apply` (motofixes/registry.py), run once in the lab process, or a rewrite of the
middleware seam.
"""

from __future__ import annotations

import uuid
from typing import Any
from xml.sax.saxutils import escape

from labkit.labprocess.motofixes import middleware
from labkit.labprocess.motofixes.fidelity import LAB_PARTITION
from labkit.labprocess.motofixes.middleware import Answer, Request
from labkit.protocol import ACCOUNT_ID

IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"
# IAM actions whose UserName may be left out: "it defaults to the user making the request"
CALLER_S_USER = frozenset(
    {"GetUser", "ListAccessKeys", "ListMFADevices", "ListSigningCertificates", "ListSSHPublicKeys"}
)
NO_USER = "Must specify userName when calling with non-User credentials"


def rewrite_a_call_naming_no_user(request: Request, answer: Answer) -> Answer | None:
    """Fidelity: a call that would default to the caller's user, signed with credentials that
    belong to no user (a role's session), is refused with 400 ValidationError `Must specify
    userName when calling with non-User credentials`. moto answers GetUser with a user it makes up
    (`default_user`, exit status 0), and the List calls with NoSuchEntity (`The Access Key with id
    ASIA… cannot be found`, `The user with name None cannot be found.`). A caller refused first
    (403) keeps that refusal."""
    if request.service != "iam" or request.action not in CALLER_S_USER or request.param("UserName"):
        return None
    if answer.status == 403:
        return None
    from moto.iam.models import iam_backends

    if iam_backends[ACCOUNT_ID][LAB_PARTITION].get_user_from_access_key_id(request.access_key_id) is not None:
        return None
    return Answer(400, f'<ErrorResponse xmlns="{IAM_XMLNS}"><Error><Type>Sender</Type><Code>ValidationError</Code>'
                       f"<Message>{escape(NO_USER)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
                       "</ErrorResponse>")  # fmt: skip


def a_role_session_names_no_user() -> None:
    middleware.add(rewrite_a_call_naming_no_user, watch=("iam:GetUser",))


def role_last_used_names_its_region() -> None:
    """Fidelity: GetRole's `RoleLastUsed` gives the date and the Region of the role's last use
    (`{"LastUsedDate": …, "Region": "us-east-1"}`). moto records the date when a request is signed
    with one of the role's sessions, and never the Region, so `Region` is missing."""
    from moto.iam import models

    original = models.mark_account_as_visited

    def mark_account_as_visited(account_id: str, access_key: str, service: str, region: str) -> None:
        original(account_id, access_key, service, region)
        key: Any = models.iam_backends[account_id][LAB_PARTITION].access_keys.get(access_key)
        if key is None or not getattr(key, "role_arn", None):
            return
        try:
            role = models.iam_backends[account_id][LAB_PARTITION].get_role_by_arn(key.role_arn)
        except models.NotFoundException:
            return
        if role.last_used is not None:
            role.last_used_region = region  # type: ignore[assignment]

    setattr(models, "mark_account_as_visited", mark_account_as_visited)  # noqa: B010
