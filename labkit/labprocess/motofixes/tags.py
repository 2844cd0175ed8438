"""EC2's tag restrictions (a fidelity record of registry.py, `tags_follow_ec2s_restrictions`).

Every EC2 request that carries tags is checked as EC2 checks it: CreateTags on any resource, and
every TagSpecification (RunInstances, CreateSecurityGroup, CreateKeyPair, CreateLaunchTemplate and
its LaunchTemplateData, …). EC2 refuses, with InvalidParameterValue (HTTP 400):

    a key starting with aws: (any case)      Value ( aws:x ) for parameter key is invalid. Tag keys
                                             starting with 'aws:' are reserved for internal use
                                             (CreateTags; a TagSpecification says the second sentence alone)
    a key over 128 characters                Tag key exceeds the maximum length of 128 characters
    a value over 256 characters              Tag value exceeds the maximum length of 256 characters
    a character XML cannot carry (U+0000 to  Value ( a\\u001bb ) for parameter value is invalid. Tag
    U+001F but tab, line feed and carriage   values cannot contain the character U+001B
    return; U+FFFE, U+FFFF)

Every other character is accepted: EC2 allows any character in its own resources' tags (EC2 User
Guide, tag restrictions); letters, digits, spaces and `+ - = . _ : / @` are the set that every AWS
service accepts, not EC2's limit. Where the words come from: the `aws:` sentences are transcripts of
EC2's answers (CreateTags: cloud-custodian/cloud-custodian#5975, kubernetes-sigs/
cluster-api-provider-aws#5120; RunInstances: jcjorel/ec2-spot-converter#13); the value's length, EC2's
400 as quoted in iriusrisk/GoCD-EC2-Elastic-Agent-Plugin#24 and a CDK project's source (`Tag value
exceeds the maximum length of 256 characters (Service: Ec2, Status Code: 400, …)`);
the key's length is that sentence with the key's limit; the character's is the lab's own, in the
form EC2 gives its tag errors (no transcript found). moto accepts all of them, and writes such a
character raw into its XML: every later DescribeInstances was then an answer botocore cannot parse.

The check runs after moto has authenticated and authorized the request (a bad signature, or a caller
not allowed the action, gets that refusal first) and before moto acts on it (nothing is launched,
made or tagged). How: the EC2 backend subclass (subclass.py) gets a mixin whose url_paths
route EC2's requests to a subclass of moto's EC2Response, whose authorization step, once moto's has
passed, reads the request's `…Tag.N.Key` and `…Tag.N.Value` parameters. moto's classes are unchanged.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from labkit.labprocess.motofixes import subclass
from labkit.labprocess.motofixes.fidelity import Backend

MAX_KEY, MAX_VALUE = 128, 256
# Tag.1.Key (CreateTags), TagSpecification.1.Tag.1.Key, LaunchTemplateData.TagSpecification.1.Tag.1.Value, …
TAG_PARAMETER = re.compile(r"^(?P<spec>(?:.+\.)?)Tag\.(?P<n>\d+)\.(?P<part>Key|Value)$")
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # what XML 1.0 cannot carry
NOT_CHECKED = frozenset({"DeleteTags"})  # its Tag.N names the tags to remove
RESERVED = "Tag keys starting with 'aws:' are reserved for internal use"


def refusal(action: str, params: Mapping[str, Any]) -> str | None:
    """EC2's message refusing a tag of the request (`params`: each query parameter's values), or
    None when EC2 takes them all."""
    if action in NOT_CHECKED:
        return None
    tags: dict[tuple[str, int], dict[str, str]] = {}
    for name, given in params.items():
        found = TAG_PARAMETER.match(name)
        if found:
            value = given[0] if isinstance(given, list) and given else given
            tags.setdefault((found["spec"], int(found["n"])), {})[found["part"]] = str(value or "")
    for (spec, _), tag in sorted(tags.items()):
        said = _refused(tag.get("Key", ""), tag.get("Value", ""), specified=bool(spec))
        if said is not None:
            return said
    return None


def _refused(key: str, value: str, *, specified: bool) -> str | None:
    """Why EC2 refuses the tag `key`=`value` (`specified`: given in a TagSpecification, not to
    CreateTags), or None."""
    for part, text in (("key", key), ("value", value)):
        bad = NOT_XML.search(text)
        if bad is not None:
            return (f"Value ( {_shown(text)} ) for parameter {part} is invalid. "
                    f"Tag {part}s cannot contain the character U+{ord(bad[0]):04X}")  # fmt: skip
    if key.lower().startswith("aws:"):
        return RESERVED if specified else f"Value ( {key} ) for parameter key is invalid. {RESERVED}"
    if len(key) > MAX_KEY:
        return f"Tag key exceeds the maximum length of {MAX_KEY} characters"
    if len(value) > MAX_VALUE:
        return f"Tag value exceeds the maximum length of {MAX_VALUE} characters"
    return None


def _shown(text: str) -> str:
    """`text`, with each character XML cannot carry written as `\\u001b` (the message is XML too)."""
    return NOT_XML.sub(lambda found: f"\\u{ord(found[0]):04x}", text)


@functools.cache
def lab_ec2_response() -> type:
    """moto's EC2Response, with EC2's tag restrictions checked once the request is authorized."""
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import InvalidParameterValue
    from moto.ec2.responses import EC2Response
    from werkzeug.exceptions import HTTPException

    class Refused(HTTPException):
        """What moto's call_action answers for a refusal of its authorization step: this status and body."""

        def __init__(self, status: int, body: str | bytes) -> None:
            super().__init__()
            self.code, self.description = status, body if isinstance(body, str) else body.decode()

    class LabEC2Response(EC2Response):  # type: ignore[misc]
        def _authenticate_and_authorize_normal_action(self, resource: str = "*") -> None:
            super()._authenticate_and_authorize_normal_action(resource)
            said = refusal(self._get_action(), self.querystring)
            if said is not None:  # moto's own EC2 error answer, as its actions' refusals have
                status, headers, body = self.serialized(ActionResult(InvalidParameterValue(said)))
                self.response_headers["Content-Type"] = headers.get("Content-Type", "text/xml")  # call_action's
                raise Refused(status, body)

    return LabEC2Response


class TagsFollowEc2sRestrictions(Backend):
    """The EC2 backend's urls send EC2's requests to the lab's EC2Response (lab_ec2_response)."""

    @property
    def url_paths(self) -> dict[str, Any]:
        lab_response: Any = lab_ec2_response()
        paths: dict[str, Any] = super().url_paths
        return {path: lab_response.dispatch if getattr(handler, "__self__", None) is lab_response.__base__ else handler
                for path, handler in paths.items()}  # fmt: skip


def tags_follow_ec2s_restrictions() -> None:
    subclass.add("ec2", TagsFollowEc2sRestrictions)
