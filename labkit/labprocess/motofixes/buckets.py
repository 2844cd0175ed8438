"""Fidelity: who may read and write a bucket is the lab's evaluator's decision, for requests that are
signed and for those that are not. The apply of the record `buckets_decided_by_the_labs_evaluator`.

moto decides an object request twice: first with the bucket's policy alone (`FakeBucket.get_permission`:
its actions and resources matched with wildcards, its Principal and Condition ignored, so a Deny meant
for one role's sessions refuses the administrator too, with an empty 403), then with the caller's
policies. A request that is not signed gets an empty 403 for a private object, and fails with a
KeyError (500) on one a bucket policy opens to everyone.

The lab decides once, in decisions.py, with the caller's policies and the bucket's policy together.
A request that is not signed is the anonymous principal's (`"Principal": "*"` in a bucket policy is
the only thing that allows it), refused as S3 refuses it: 403 AccessDenied, `Access Denied`.

The apply of `new_buckets_block_public_access` is here too: since April 2023 every new bucket has all
four Block Public Access settings on (S3 User Guide, "Blocking public access to your Amazon S3
storage"): a public bucket policy is refused (decisions.py), and a public bucket answers only the
account's own principals. moto makes buckets without them.
"""

from __future__ import annotations

import contextvars
from typing import Any

from labkit.labprocess import replay, storage_access

ANONYMOUS_KEY_ACTIONS = {"GET": "s3:GetObject", "HEAD": "s3:GetObject", "PUT": "s3:PutObject",
                         "DELETE": "s3:DeleteObject", "POST": "s3:PutObject"}  # fmt: skip
_anonymous_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar("anonymous_allowed", default=False)


def _refuse_anonymous() -> None:
    from moto.s3.exceptions import S3AccessDeniedError

    raise S3AccessDeniedError()


def _signed(headers: Any, url: str) -> bool:
    """A signed request: decided by decisions.py, through moto's authorization."""
    return "Authorization" in headers or "X-Amz-Credential=" in url or "Signature=" in url


def buckets_decided_by_the_labs_evaluator() -> None:
    """moto's own reading of bucket policies gives way to the lab's decision; a request that is not
    signed is decided as the anonymous principal's."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import PermissionResult
    from moto.s3 import models, responses

    from labkit.labprocess.motofixes.decisions import anonymous_s3_allowed

    def get_permission(self: Any, action: str, resource: str) -> Any:
        # the lab decided already (decisions.py, and the anonymous principal here)
        return PermissionResult.PERMITTED if _anonymous_allowed.get() else PermissionResult.NEUTRAL

    original_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action

    def authorize(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        if _signed(self.headers, getattr(self, "uri", "")) or replay.active():  # replayed: acknowledged already
            original_authorize(self, bucket_name=bucket_name, key_name=key_name)
            return
        arn = f"{bucket_name}/{key_name}" if key_name else (bucket_name or "")
        action = storage_access.s3_action(f"s3:{self.data.get('Action', '')}")
        if not (arn and anonymous_s3_allowed(action, f"arn:aws:s3:::{arn}")):
            _refuse_anonymous()

    original_key_response = responses.S3Response._key_response

    def key_response(self: Any, request: Any, full_url: str) -> Any:
        if _signed(request.headers, full_url):
            return original_key_response(self, request, full_url)
        resource = f"arn:aws:s3:::{self.parse_bucket_name_from_url(request, full_url)}/{self.parse_key_name()}"
        action = ANONYMOUS_KEY_ACTIONS.get(request.method, "")
        if not replay.active():
            if not (action and anonymous_s3_allowed(action, resource)):
                _refuse_anonymous()
            listing = f"arn:aws:s3:::{storage_access.bucket_of(resource)}"
            if storage_access.object_missing(resource) and not anonymous_s3_allowed("s3:ListBucket", listing):
                _refuse_anonymous()  # NoSuchKey only to whom s3:ListBucket is allowed
        token = _anonymous_allowed.set(True)
        try:
            return original_key_response(self, request, full_url)
        finally:
            _anonymous_allowed.reset(token)

    setattr(models.FakeBucket, "get_permission", get_permission)  # noqa: B010
    setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_s3_action", authorize)  # noqa: B010
    setattr(responses.S3Response, "_key_response", key_response)  # noqa: B010


def new_buckets_block_public_access() -> None:
    """Every new bucket starts with BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy and
    RestrictPublicBuckets on, until PutPublicAccessBlock or DeletePublicAccessBlock says otherwise."""
    from moto.s3 import models

    original = models.S3Backend.create_bucket

    def create_bucket(self: Any, bucket_name: str, region_name: str, *args: Any, **kwargs: Any) -> Any:
        bucket = original(self, bucket_name, region_name, *args, **kwargs)
        bucket.public_access_block = models.PublicAccessBlock(True, True, True, True)
        return bucket

    setattr(models.S3Backend, "create_bucket", create_bucket)  # noqa: B010


def multipart_upload_ids_replay() -> None:
    """A multipart upload's id is drawn as the lab's secrets are (labkit/labprocess/keys.py), so the
    journal keeps it and a replayed CreateMultipartUpload gets the same id again: the UploadPart and
    CompleteMultipartUpload journaled after it then replay too."""
    from moto.s3 import models

    from labkit.labprocess.keys import SECRETS

    original = models.FakeMultipart.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        drawn = self.id
        self.id = SECRETS.draw(lambda: drawn)

    setattr(models.FakeMultipart, "__init__", __init__)  # noqa: B010
