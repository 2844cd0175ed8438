"""The Instance Metadata Service of every simulated instance, over real HTTP.

Each instance's shell sets `http_proxy` to this server, with the instance id and a per-instance
key as the proxy credentials, so `curl http://169.254.169.254/...`, botocore and Python reach
"their" metadata service with no other configuration. Requests for any other address are
refused with a message: a simulated instance has no route to the internet.

`MetadataService.respond` holds the rules (IMDSv1 and v2, tokens, metadata options, paths) and
reads the lab's state only through two functions it is given; `ImdsProxy` is the transport.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
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
from labkit.labprocess.backends import ChangeNotSaved, InstanceFacts, RoleSession, utcnow
from labkit.protocol import instance_key

IMDS_HOSTS = {"169.254.169.254", "fd00:ec2::254"}
TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
MAX_TTL = 21600

# What real EC2 serves under /latest/meta-data/ that this lab does not emulate.
NOT_EMULATED = {
    "ami-launch-index", "ami-manifest-path", "ancestor-ami-ids", "autoscaling", "block-device-mapping",
    "events", "hibernation", "identity-credentials", "instance-action", "instance-life-cycle", "ipv6",
    "kernel-id", "mac", "metrics", "network", "partition-number", "product-codes", "profile",
    "public-hostname", "public-ipv4", "public-keys", "ramdisk-id", "reservation-id", "services",
    "spot", "system", "tags", "placement/availability-zone-id", "placement/group-name",
    "placement/host-id", "placement/partition-number",
}  # fmt: skip
NOT_EMULATED_ROOTS = ("/latest/user-data", "/latest/dynamic")

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
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed"}


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(status: int, note: str = "") -> Reply:
    """The page real IMDS sends with that status; `note` only where the lab must say more."""
    if status == 404:
        return Reply(404, _PAGE_404.format(note=f"\n  <p>{note}</p>" if note else ""))
    return Reply(status, _PAGE.format(code=status, reason=_REASONS[status]))


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
    ) -> None:
        self._credentials = credentials
        self._tokens = tokens
        self._clock = clock

    def respond(self, facts: InstanceFacts, method: str, path: str, headers: dict[str, str]) -> Reply:
        """Answer one request; `headers` have lower-case names."""
        if facts.http_endpoint != "enabled":
            return error_reply(403)
        if path == TOKEN_PATH:
            return self._token(facts, method, headers) if method == "PUT" else error_reply(405)
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
        if path in ("/latest", "/latest/"):
            return Reply(200, "meta-data")
        if any(path == root or path.startswith(root + "/") for root in NOT_EMULATED_ROOTS):
            return self._not_emulated(path)
        prefix = "/latest/meta-data"
        if not (path == prefix or path.startswith(prefix + "/")):
            return self._not_emulated(path) if path == "/" else error_reply(404)
        item = path[len(prefix) :].strip("/")
        if item == "iam" or item.startswith("iam/"):
            return self._iam(facts, item)
        leaves = self._leaves(facts)
        if item in leaves:
            return Reply(200, leaves[item])
        listing = self._listing(item, [*leaves, *(["iam/info"] if facts.profile_arn else [])])
        if listing:
            return Reply(200, listing)
        if item in NOT_EMULATED or item.split("/")[0] in NOT_EMULATED:
            return self._not_emulated(path)
        return error_reply(404)

    @staticmethod
    def _leaves(facts: InstanceFacts) -> dict[str, str]:
        return {
            "ami-id": facts.ami_id,
            "hostname": facts.local_hostname,
            "instance-id": facts.instance_id,
            "instance-type": facts.instance_type,
            "local-hostname": facts.local_hostname,
            "local-ipv4": facts.local_ipv4,
            "placement/availability-zone": facts.availability_zone,
            "placement/region": facts.region,
            "security-groups": "\n".join(facts.security_groups),
        }

    @staticmethod
    def _listing(item: str, paths: list[str]) -> str:
        base = f"{item}/" if item else ""
        children = sorted(
            {p[len(base) :].split("/")[0] + ("/" if "/" in p[len(base) :] else "") for p in paths if p.startswith(base)}
        )
        return "\n".join(children)

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
        body = reply.body.encode()
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
