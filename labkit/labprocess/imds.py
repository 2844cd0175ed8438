"""The Instance Metadata Service of every simulated instance, over real HTTP.

Each instance's shell sets `http_proxy` to this server, with the instance id and a per-instance
key as the proxy credentials, so `curl http://169.254.169.254/...`, botocore and Python reach
"their" metadata service with no other configuration. Requests for any other address are
refused with a message: a simulated instance has no route to the internet.

`MetadataService.respond` holds the rules (IMDSv1 and v2, tokens, metadata options, builds and
paths) and reads the lab's state only through two functions it is given; what the paths hold is
`metadata_tree.py`, the identity document and its signatures `metadata_identity.py`. `ImdsProxy`
is the transport: it also answers at the names Amazon Linux resolves to the service
(`instance-data`, `instance-data.ec2.internal`) and, when the instance may use it, at the IPv6
address `[fd00:ec2::254]`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from labkit.labprocess import gate
from labkit.labprocess.facts import InstanceFacts
from labkit.labprocess.metadata_identity import IdentitySigner
from labkit.labprocess.metadata_tree import (
    DYNAMIC_SINCE,
    IAM_SINCE,
    LATEST,
    USER_DATA_SINCE,
    VERSIONS,
    dynamic,
    meta_data,
    served,
)
from labkit.labprocess.recovery import ChangeNotSaved
from labkit.labprocess.sessions import RoleSession, utcnow
from labkit.labprocess.wsgi import reason
from labkit.protocol import IMDS_IPV4, IMDS_IPV6, instance_key

IPV6_HOST = IMDS_IPV6
# 169.254.169.254, the names Amazon Linux resolves to it (its DNS search domain is ec2.internal),
# and the IPv6 address (answered only where the instance may use it: `ipv6_refusal`).
IMDS_HOSTS = {IMDS_IPV4, "instance-data", "instance-data.ec2.internal", IPV6_HOST}
TOKEN_PATH = "/latest/api/token"
# "Issuing PUT requests to any version-specific path, for example /2021-03-23/api/token, will
# result in the metadata service returning 403 Forbidden errors." (Retrieve instance metadata)
DATED_TOKEN_PATH = re.compile(r"/(?:1\.0|\d{4}-\d{2}-\d{2})/api/token/?")
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
MAX_TTL = 21600

# What real EC2 serves every instance that this lab does not: identity-credentials/ec2/ holds
# credentials AWS makes for its own features (EC2 Instance Connect), "[Internal use only]".
NOT_EMULATED = {"identity-credentials": "2018-05-23"}

_PAGE_404 = """<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>404 - Not Found</title>
 </head>
 <body>
  <h1>404 - Not Found</h1>{note}
 </body>
</html>
"""
_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
   <head>
      <title>{code} - {reason}</title>
   </head>
   <body>
      <h1>{code} - {reason}</h1>
   </body>
</html>
"""


@dataclass
class Reply:
    status: int
    body: str | bytes  # bytes: user data, as given to RunInstances
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(status: int, note: str = "") -> Reply:
    """The page real IMDS sends with that status; `note` only where the lab must say more."""
    if status == 404:
        return Reply(404, _PAGE_404.format(note=f"\n  <p>{note}</p>" if note else ""))
    return Reply(status, _PAGE.format(code=status, reason=reason(status)))


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(fields: dict[str, str]) -> str:
    """JSON laid out as IMDS lays it out (`"Key" : "value"`)."""
    return json.dumps(fields, indent=2, separators=(",", " : "))


class Tokens:
    """IMDSv2 session tokens: signed, bound to one instance, valid for their TTL."""

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(b"imds-token:" + secret.encode()).digest()
        self._clock = clock

    def _mac(self, instance_id: str, payload: bytes) -> bytes:
        return hmac.new(self._key, instance_id.encode() + payload, hashlib.sha256).digest()[:30]

    def mint(self, instance_id: str, ttl: int) -> str:
        payload = struct.pack(">BQ", 1, int(self._clock()) + ttl)
        return base64.b64encode(payload + self._mac(instance_id, payload)).decode()

    def remaining(self, instance_id: str, token: str) -> int | None:
        """Seconds the token is still valid for this instance, or None if it is not valid."""
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            return None
        payload, mac = raw[:9], raw[9:]
        if len(payload) != 9 or not hmac.compare_digest(mac, self._mac(instance_id, payload)):
            return None
        version, expires = struct.unpack(">BQ", payload)
        left = expires - int(self._clock())
        return left if version == 1 and left > 0 else None


class MetadataService:
    """The rules of IMDS for the instance that asks, reading the lab's live state."""

    def __init__(
        self,
        credentials: Callable[[InstanceFacts], RoleSession | None],
        tokens: Tokens,
        *,
        clock: Callable[[], datetime] = utcnow,
        identity: IdentitySigner | None = None,
    ) -> None:
        self._credentials = credentials
        self._tokens = tokens
        self._clock = clock
        self._identity = identity or IdentitySigner()

    def respond(self, facts: InstanceFacts, method: str, path: str, headers: dict[str, str]) -> Reply:
        """Answer one request; `headers` have lower-case names."""
        if facts.http_endpoint != "enabled":
            return error_reply(403)
        if path == TOKEN_PATH:
            return self._token(facts, method, headers) if method == "PUT" else error_reply(405)
        if method == "PUT" and DATED_TOKEN_PATH.fullmatch(path):
            return error_reply(403)
        if method not in ("GET", "HEAD"):
            return error_reply(405)
        token = headers.get(TOKEN_HEADER)
        remaining = self._tokens.remaining(facts.instance_id, token) if token is not None else None
        if token is not None and remaining is None:
            return error_reply(401)
        if token is None and facts.http_tokens == "required":
            return error_reply(401)
        reply = self._get(facts, path)
        if remaining is not None and reply.status == 200:
            reply.headers["X-Aws-Ec2-Metadata-Token-Ttl-Seconds"] = str(remaining)
        return reply

    def _token(self, facts: InstanceFacts, method: str, headers: dict[str, str]) -> Reply:
        if "x-forwarded-for" in headers:
            return error_reply(403)
        try:
            ttl = int(headers.get(TTL_HEADER, ""))
        except ValueError:
            return error_reply(400)
        if not 1 <= ttl <= MAX_TTL:
            return error_reply(400)
        token = self._tokens.mint(facts.instance_id, ttl)
        return Reply(200, token, {"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": str(ttl)})

    def _get(self, facts: InstanceFacts, path: str) -> Reply:
        path = re.sub("/{2,}", "/", path)  # EC2 reads `latest//meta-data/…` as `latest/meta-data/…`
        if path == "/":
            return Reply(200, "\n".join([*VERSIONS, LATEST]))
        version, _, rest = path.lstrip("/").partition("/")
        if version != LATEST and version not in VERSIONS:
            return error_reply(404)
        root, _, item = rest.partition("/")
        item = item.strip("/")
        if root == "":
            return Reply(200, self._version_listing(facts, version))
        if root == "meta-data":
            return self._meta_data(facts, version, item, path)
        if root == "dynamic" and served(version, DYNAMIC_SINCE):
            tree = dynamic(facts, lambda kind: self._identity.answer(facts, kind))
            return self._found(tree.leaf(item, version), tree.listing(item, version))
        if root == "user-data" and not item and facts.user_data:
            return Reply(200, facts.user_data)
        return error_reply(404)

    @staticmethod
    def _version_listing(facts: InstanceFacts, version: str) -> str:
        names = ["meta-data"]
        if served(version, DYNAMIC_SINCE):
            names.append("dynamic")
        if facts.user_data and served(version, USER_DATA_SINCE):
            names.append("user-data")  # only when the instance was launched with user data
        return "\n".join(sorted(names))

    def _meta_data(self, facts: InstanceFacts, version: str, item: str, path: str) -> Reply:
        category = item.split("/")[0]
        if category in NOT_EMULATED and served(version, NOT_EMULATED[category]):
            return self._not_emulated(path)
        if category == "iam":
            return self._iam(facts, item) if served(version, IAM_SINCE) else error_reply(404)
        tree = meta_data(facts)
        with_iam = not item and facts.profile_arn is not None and served(version, IAM_SINCE)
        return self._found(tree.leaf(item, version), tree.listing(item, version, ["iam/"] if with_iam else []))

    @staticmethod
    def _found(value: str | bytes | None, listing: str | None) -> Reply:
        if value is not None:
            return Reply(200, value)
        return Reply(200, listing) if listing is not None else error_reply(404)

    def _iam(self, facts: InstanceFacts, item: str) -> Reply:
        if facts.profile_arn is None:
            return error_reply(404)
        if item == "iam":
            return Reply(200, "info\nsecurity-credentials/")
        if item == "iam/security-credentials" and facts.role_name:
            return Reply(200, facts.role_name)
        # only info and the credentials document need the role's session (minting one is journaled)
        session = self._credentials(facts) if facts.role_name else None
        updated = _timestamp(session.last_updated if session else self._clock())
        if item == "iam/info":
            return Reply(200, _document({
                "Code": "Success",
                "LastUpdated": updated,
                "InstanceProfileArn": facts.profile_arn,
                "InstanceProfileId": facts.profile_id or "",
            }))  # fmt: skip
        if facts.role_name is None or item != f"iam/security-credentials/{facts.role_name}":
            return error_reply(404)
        if session is None:
            return Reply(200, _document({
                "Code": "AssumeRoleUnauthorizedAccess",
                "Message": f"EC2 cannot assume the role {facts.role_name}.  Please see documentation at "
                "http://docs.amazonwebservices.com/IAM/latest/UserGuide/RolesTroubleshooting.html.",
                "LastUpdated": updated,
            }))  # fmt: skip
        return Reply(200, _document({
            "Code": "Success",
            "LastUpdated": updated,
            "Type": "AWS-HMAC",
            "AccessKeyId": session.access_key_id,
            "SecretAccessKey": session.secret_access_key,
            "Token": session.token,
            "Expiration": _timestamp(session.expiration),
        }))  # fmt: skip

    @staticmethod
    def _not_emulated(path: str) -> Reply:
        return error_reply(404, f"labkit: the lab's metadata service does not emulate {path} (real EC2 serves it).")


def ipv6_refusal(facts: InstanceFacts) -> str | None:
    """Why the instance cannot reach the service's IPv6 address, or None when it can: AWS answers
    there only when the instance's HttpProtocolIpv6 is enabled and its subnet is IPv6-supported
    ("The IPv6 address is only accessible on Instances built on the AWS Nitro System and in an
    IPv6-supported subnet (dual stack or IPv6 only)")."""
    missing = []
    if facts.http_protocol_ipv6 != "enabled":
        missing.append(
            "its metadata option HttpProtocolIpv6 is disabled "
            "(aws ec2 modify-instance-metadata-options --http-protocol-ipv6 enabled)"
        )
    primary = facts.primary_interface
    if primary is None or not primary.subnet_ipv6_cidr_blocks:
        missing.append("its subnet has no IPv6 CIDR block")
    if not missing:
        return None
    return " and ".join(missing) + "; the metadata service answers at 169.254.169.254."


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"
    timeout = gate.REQUEST_TIMEOUT  # a connection that goes silent is closed
    sys_version = ""
    server: ImdsProxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet by design
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without this, Nagle's algorithm and the client's
        # delayed ACK hold the body back ~40 ms on a kept-alive connection.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, reply: Reply, *, content_type: str = "text/plain") -> None:
        body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status: int, message: str, **headers: str) -> None:
        self._send(Reply(status, f"labkit: {message}\n", headers))

    def _instance(self) -> str | None:
        auth = self.headers.get("Proxy-Authorization", "")
        scheme, _, encoded = auth.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = instance_key(self.server.secret, user)
        return user if hmac.compare_digest(password.encode(), expected.encode()) else None

    def _handle(self) -> None:
        refusal = gate.proxy_refusal(self.command, self.path, self.request_version, self.headers)
        if refusal is not None:  # before reading the body (labkit/labprocess/gate.py)
            gate.LOG.refused("metadata port", refusal)
            self._refuse(refusal.status, refusal.why)
            return gate.close_after_refusal(self)
        length = gate.body_length(self.headers)
        if length:
            self.rfile.read(length)
        target = urlsplit(f"//{self.path}" if self.command == "CONNECT" else self.path)
        host = target.hostname or ""
        if self.command == "CONNECT" or host not in IMDS_HOSTS or (target.port or 80) != 80:
            return self._refuse(
                403,
                f"this simulated instance has no route to {host or self.path}; "
                "only the metadata service (169.254.169.254) and the lab's AWS endpoint answer.",
            )
        instance_id = self._instance()
        if instance_id is None:
            return self._refuse(
                407,
                "this is the lab's metadata service; it answers requests from lab instances only "
                "(labkit ssh INSTANCE).",
                **{"Proxy-Authenticate": 'Basic realm="labkit"'},
            )
        service = self.server.service
        facts = self.server.facts(instance_id)
        if facts is None or facts.state != "running":
            state = "gone from this lab" if facts is None else facts.state
            return self._refuse(502, f"instance {instance_id} is {state}; its metadata service does not answer.")
        if host == IPV6_HOST and (unreachable := ipv6_refusal(facts)):
            return self._refuse(403, f"this simulated instance has no route to {host}: {unreachable}")
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._send(service.respond(facts, self.command, target.path or "/", headers))

    def _dispatch(self) -> None:
        try:
            self._handle()
        except ChangeNotSaved as error:  # a role session the journal could not keep: not handed out
            self._refuse(500, f"{error}.")
        except (TimeoutError, ConnectionError):  # the client went silent mid-request, or left
            self.close_connection = True
        except Exception:  # a bug here must not kill the lab: report it, keep serving
            traceback.print_exc(file=sys.stderr)
            self._refuse(500, "internal error in the lab's metadata service; see lab.log in the lab's state directory.")

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = do_CONNECT = _dispatch


class ImdsProxy(ThreadingHTTPServer):
    """The HTTP server every instance's `http_proxy` points at, on loopback only."""

    daemon_threads = True

    def __init__(
        self,
        service: MetadataService,
        facts: Callable[[str], InstanceFacts | None],
        secret: str,
        port: int = 0,
    ) -> None:
        self.service = service
        self.facts = facts
        self.secret = secret
        super().__init__(("127.0.0.1", port), _ProxyHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _InstanceHandler(_ProxyHandler):
    """169.254.169.254 inside one sealed instance (labprocess/sandbox.py): requests come as to EC2's
    own service, and the socket that accepted them says which instance asks: nothing to forge."""

    server: InstanceMetadataServer  # type: ignore[assignment]

    def _instance(self) -> str | None:
        return self.server.instance_id

    def _handle(self) -> None:
        if self.path.startswith("/"):  # as sent to the service itself, not to a proxy: at the address it came to
            address = self.connection.getsockname()[0]
            self.path = f"http://{f'[{address}]' if ':' in address else address}{self.path}"
        super()._handle()


class InstanceMetadataServer(ThreadingHTTPServer):  # what _ProxyHandler reads of ImdsProxy, for one instance
    """The metadata service of one sealed instance, on a socket listening inside its network."""

    daemon_threads = True

    def __init__(
        self,
        service: MetadataService,
        facts: Callable[[str], InstanceFacts | None],
        instance_id: str,
        listening: socket.socket,
    ) -> None:
        self.service = service
        self.facts = facts
        self.instance_id = instance_id
        super().__init__(listening.getsockname(), _InstanceHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = listening
